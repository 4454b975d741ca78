package rediscoord_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// TestReplicasLogoutAfterRotation: replica B rotates the token; replica A's
// Logout meets a stale copy of the session and must revoke B's token, which
// only the shared record tells it, against a revocation endpoint that (as
// RFC 7009 §2.2 allows) answers 200 to a dead token and does nothing.
func TestReplicasLogoutAfterRotation(t *testing.T) {
	c := newCluster(t, true)
	c.edit = func(cfg *core.Config) { cfg.RevocationURL = c.srv.RevokeURL }
	a, b := c.replica(), c.replica()
	session, _ := a.login()
	c.clock.Advance(59*time.Minute + 30*time.Second)

	stale := a.request(session) // A's request holds the old copy
	fromB, err := b.token(session)
	if err != nil {
		t.Fatalf("replica B's refresh: %v", err)
	}
	var live atomic.Value // the grant's live tokens: only those are revoked
	live.Store([2]string{fromB.RefreshToken, fromB.AccessToken})
	var ignored atomic.Int64
	c.srv.SetRevokeHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		if tok := form.Get("token"); tok != live.Load().([2]string)[0] && tok != live.Load().([2]string)[1] {
			ignored.Add(1)
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
	a = c.restart(a.sm) // A knows nothing of B's rotation
	if err := a.r.Logout(stale); err != nil {
		t.Fatalf("Logout on replica A: %v", err)
	}
	a.end(stale)
	if n := c.srv.RevokedGrants(); n != 1 {
		t.Errorf("%d grants revoked, want 1 (%d dead tokens revoked in vain)", n, ignored.Load())
	}
	if _, err := b.token(session); err == nil {
		t.Error("the session still has a usable token after Logout")
	}
	if n := c.srv.Reuses(); n != 0 {
		t.Errorf("%d reused refresh tokens", n)
	}
}
