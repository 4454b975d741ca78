package rediscoord_test

import (
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// TestReplicasLogoutAfterRotation: replica B rotates the token; replica A's
// Logout meets a stale copy of the session and must revoke B's token, which
// only the shared record tells it: the mock server's revocation endpoint,
// as RFC 7009 section 2.2 allows, answers 200 to a dead token and does
// nothing (smarttest.RevokeRotatedNothing).
func TestReplicasLogoutAfterRotation(t *testing.T) {
	c := newCluster(t, true)
	c.edit = func(cfg *core.Config) { cfg.RevocationURL = c.srv.RevokeURL }
	a, b := c.replica(), c.replica()
	session, _ := a.login()
	c.clock.Advance(59*time.Minute + 30*time.Second)

	stale := a.request(session) // A's request holds the old copy
	if _, err := b.token(session); err != nil {
		t.Fatalf("replica B's refresh: %v", err)
	}
	a = c.restart(a.sm) // A knows nothing of B's rotation
	if err := a.r.Logout(stale); err != nil {
		t.Fatalf("Logout on replica A: %v", err)
	}
	a.end(stale)
	if n := c.srv.RevokedGrants(); n != 1 {
		t.Errorf("%d grants revoked, want 1", n)
	}
	if _, err := b.token(session); err == nil {
		t.Error("the session still has a usable token after Logout")
	}
	if n := c.srv.Reuses(); n != 0 {
		t.Errorf("%d reused refresh tokens", n)
	}
}
