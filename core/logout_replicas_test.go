package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// liveTokens follows the live refresh token of each of the mock server's
// grants, by watching the token endpoint's answers. The server's
// revocation endpoint, by default (smarttest.RevokeRotatedNothing), does
// what RFC 7009 section 2.2 allows: a token no longer valid (a rotated
// refresh token, a replaced access token) is answered 200 and nothing is
// revoked. Against it, a Logout that revokes a dead token of a grant
// leaves the grant alive.
type liveTokens struct {
	srv  *smarttest.Server
	mu   sync.Mutex
	live map[string]bool // the grants' live refresh tokens
}

// followLiveTokens installs liveTokens on srv.
func followLiveTokens(srv *smarttest.Server) *liveTokens {
	lt := &liveTokens{srv: srv, live: map[string]bool{}}
	srv.SetTokenHook(lt.tokenHook)
	return lt
}

// grant issues a grant whose tokens lt follows.
func (lt *liveTokens) grant() *core.Token {
	tok := lt.srv.Grant()
	lt.mu.Lock()
	lt.live[tok.RefreshToken] = true
	lt.mu.Unlock()
	return tok
}

func (lt *liveTokens) tokenHook(w http.ResponseWriter, r *http.Request, next http.Handler) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK && form.Get("grant_type") == "refresh_token" {
		var answer struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.Unmarshal(rec.Body.Bytes(), &answer)
		lt.mu.Lock()
		delete(lt.live, form.Get("refresh_token"))
		lt.live[answer.RefreshToken] = true
		lt.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// alive returns how many of the grants lt follows are still alive at the
// server: their live refresh token is still accepted. It spends those
// tokens, so it ends the test's use of the server.
func (lt *liveTokens) alive(t *testing.T) int {
	t.Helper()
	lt.mu.Lock()
	var refresh []string
	for rt := range lt.live {
		refresh = append(refresh, rt)
	}
	lt.mu.Unlock()
	lt.srv.SetTokenHook(nil)
	n := 0
	for _, rt := range refresh {
		if status, _ := serverRefresh(t, lt.srv, rt); status == http.StatusOK {
			n++
		}
	}
	return n
}

// replicaWith starts one more replica of rep, with edits to its Config.
func (rep *replicas) replicaWith(coord core.Coordinator, edit ...func(*core.Config)) int {
	sm := scs.New()
	sm.IdleTimeout = rep.sm.IdleTimeout
	sm.Store = rep.sm.Store
	o := rep.srv.Options()
	cfg := core.Config{TokenURL: rep.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: rep.clock.Now, Coordinator: coord}
	for _, e := range edit {
		e(&cfg)
	}
	r, err := core.New(cfg)
	if err != nil {
		rep.t.Fatal(err)
	}
	rep.sms = append(rep.sms, sm)
	rep.rs = append(rep.rs, r)
	return len(rep.rs) - 1
}

// saveOn stores tok in a new session on replica i, as the app's callback
// would, and returns the session token.
func (rep *replicas) saveOn(i int, tok *core.Token) string {
	rep.t.Helper()
	ctx, err := rep.sms[i].Load(context.Background(), "")
	if err != nil {
		rep.t.Fatal(err)
	}
	if err := rep.rs[i].Save(ctx, tok); err != nil {
		rep.t.Fatal(err)
	}
	return rep.sms[i].Token(ctx)
}

// TestLogoutOnAnotherReplicaAfterRotation: replica A rotated the token;
// replica B's Logout meets a stale copy of the session, holding the
// redeemed refresh token. B must revoke the grant's newest refresh token,
// which only the Coordinator's record tells it, not the dead one.
func TestLogoutOnAnotherReplicaAfterRotation(t *testing.T) {
	coord := newMemCoordinator()
	rep := newReplicas(t, 1, coord)
	b := rep.replicaWith(coord, revokeAt("/revoke", core.RevokeRFC7009))
	lt := followLiveTokens(rep.srv)
	session := rep.saveOn(0, lt.grant())
	rep.clock.Advance(time.Hour)

	var fromA *core.Token
	rep.on(b, session, func(stale context.Context, rb *core.Refresher) {
		var err error
		if fromA, err = rep.token(0, session); err != nil { // A rotates and commits
			t.Fatal(err)
		}
		if err := rb.Logout(stale); err != nil { // B logs out from its stale copy
			t.Errorf("Logout: %v", err)
		}
	})
	if status, code := serverRefresh(t, rep.srv, fromA.RefreshToken); status != 400 || code != "invalid_grant" {
		t.Errorf("replica A's refresh token after Logout on B: %d %s, want 400 invalid_grant (the grant is alive)",
			status, code)
	}
	if _, err := rep.token(0, session); err == nil {
		t.Error("the session still has a usable token after Logout")
	}
	if n := rep.srv.Reuses(); n != 0 {
		t.Errorf("%d reused refresh tokens", n)
	}
}

// TestLogoutOnAnotherReplicaDuringRefresh: replica B's Logout comes while
// replica A's refresh is in flight and the server has already rotated the
// token (its answer is on the way). B must wait for A's redemption and
// revoke what it produced.
func TestLogoutOnAnotherReplicaDuringRefresh(t *testing.T) {
	coord := newMemCoordinator()
	rep := newReplicas(t, 1, coord)
	b := rep.replicaWith(coord, revokeAt("/revoke", core.RevokeRFC7009))
	lt := followLiveTokens(rep.srv)
	session := rep.saveOn(0, lt.grant())
	rep.clock.Advance(time.Hour)

	rotated, deliver := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rep.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		lt.tokenHook(rec, r, next) // the server rotates
		once.Do(func() { close(rotated); <-deliver })
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
	refreshed := make(chan *core.Token, 1)
	go func() {
		tok, err := rep.token(0, session)
		if err != nil {
			t.Errorf("replica A's refresh: %v", err)
		}
		refreshed <- tok
	}()
	<-rotated
	loggedOut := make(chan error, 1)
	go rep.on(b, session, func(ctx context.Context, rb *core.Refresher) { loggedOut <- rb.Logout(ctx) })
	time.Sleep(50 * time.Millisecond) // Logout looks up the grant while the answer is on its way
	close(deliver)
	if err := <-loggedOut; err != nil {
		t.Errorf("Logout: %v", err)
	}
	fromA := <-refreshed
	if fromA == nil {
		t.FailNow()
	}
	if status, code := serverRefresh(t, rep.srv, fromA.RefreshToken); status != 400 || code != "invalid_grant" {
		t.Errorf("replica A's refresh token after Logout on B: %d %s, want 400 invalid_grant (the grant is alive)",
			status, code)
	}
	if n := rep.srv.Reuses(); n != 0 {
		t.Errorf("%d reused refresh tokens", n)
	}
}

// TestLogoutRacesRefreshes: in one process, hundreds of sessions each get a
// refresh and a Logout at the same moment, against a revocation endpoint
// that ignores dead tokens. Every grant must end revoked, and no refresh
// token is sent twice.
func TestLogoutRacesRefreshes(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, revokeAt("/revoke", core.RevokeRFC7009))
	lt := followLiveTokens(f.srv)
	const n = 300
	sessions := make([]string, n)
	for i := range sessions {
		ctx := f.request("")
		if err := f.r.Save(ctx, lt.grant()); err != nil {
			t.Fatal(err)
		}
		sessions[i] = f.sm.Token(ctx)
	}
	f.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, session := range sessions {
		refreshing, leaving := f.request(session), f.request(session)
		wg.Go(func() {
			<-start
			f.r.Token(refreshing) // a refresh, or ErrRevoked: either is fine
		})
		wg.Go(func() {
			<-start
			if err := f.r.Logout(leaving); err != nil {
				t.Errorf("Logout: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if alive := lt.alive(t); alive != 0 {
		t.Errorf("%d of %d grants alive after Logout (%d refresh calls)", alive, n, f.srv.RefreshCalls())
	}
	f.checkReuses(0)
	if strings.Contains(f.logs.String(), "refresh token already used") {
		t.Error("a refresh token was sent twice")
	}
}

// TestLogoutRefreshFinishesAfterLookup: in one process, a refresh of the
// session finishes after Logout looked up the grant's newest token and
// before it revokes it. Logout must revoke what that refresh produced.
func TestLogoutRefreshFinishesAfterLookup(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, revokeAt("/revoke", core.RevokeRFC7009))
	lt := followLiveTokens(f.srv)
	ctx := f.request("")
	if err := f.r.Save(ctx, lt.grant()); err != nil {
		t.Fatal(err)
	}
	session := f.sm.Token(ctx)
	f.clock.Advance(time.Hour)
	var refreshed *core.Token
	var once sync.Once
	core.SetLogoutLookedUp(f.r, func() {
		once.Do(func() {
			var err error
			if refreshed, err = f.token(session); err != nil { // another request refreshes
				t.Errorf("refresh: %v", err)
			}
		})
	})
	if err := f.logout(session); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if refreshed == nil {
		t.Fatal("the hook did not run")
	}
	if status, code := serverRefresh(t, f.srv, refreshed.RefreshToken); status != 400 || code != "invalid_grant" {
		t.Errorf("the refreshed token after Logout: %d %s, want 400 invalid_grant (the grant is alive)",
			status, code)
	}
	f.checkReuses(0)
}
