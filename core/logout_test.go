package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// revokeAt sets RevocationURL to path on the fixture's mock server.
func revokeAt(path string, style core.RevocationStyle) func(*core.Config) {
	return func(c *core.Config) {
		c.RevocationURL = strings.TrimSuffix(c.TokenURL, "/token") + path
		c.RevocationStyle = style
	}
}

// serverRefresh presents refreshToken to the server directly, as a
// client_secret_post client, and returns the status and OAuth error code.
func serverRefresh(t *testing.T, srv *smarttest.Server, refreshToken string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(srv.TokenURL, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {"smart-client"}, "client_secret": {"smart-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// logout runs Logout in a request of session.
func (f *fixture) logout(session string) error {
	ctx := f.request(session)
	defer f.end(ctx)
	return f.r.Logout(ctx)
}

// revocations records the revocation requests the server receives.
type revocations struct {
	mu   sync.Mutex
	reqs []string // "METHOD token_type_hint"
}

func (rv *revocations) hook(w http.ResponseWriter, r *http.Request, next http.Handler) {
	hint := r.URL.Query().Get("token_type_hint")
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		hint = form.Get("token_type_hint")
	}
	rv.mu.Lock()
	rv.reqs = append(rv.reqs, r.Method+" "+hint)
	rv.mu.Unlock()
	next.ServeHTTP(w, r)
}

func TestLogoutRevokes(t *testing.T) {
	tests := []struct {
		name string
		opts smarttest.Options
		edit []func(*core.Config)
		want []string
	}{
		{"RFC 7009, client_secret_post", smarttest.Options{},
			[]func(*core.Config){revokeAt("/revoke", core.RevokeRFC7009)},
			[]string{"POST refresh_token", "POST access_token"}},
		{"RFC 7009, client_secret_basic", smarttest.Options{AuthMethod: core.ClientSecretBasic},
			[]func(*core.Config){revokeAt("/revoke", core.RevokeRFC7009)},
			[]string{"POST refresh_token", "POST access_token"}},
		{"RFC 7009, private_key_jwt", jwtOptions(&ecKey().PublicKey),
			[]func(*core.Config){withKey(ecKey(), "key-1"), revokeAt("/revoke", core.RevokeRFC7009)},
			[]string{"POST refresh_token", "POST access_token"}},
		{"GET ?token= (Health Gorilla)", smarttest.Options{},
			[]func(*core.Config){revokeAt("/oauth/cancel", core.RevokeQueryGET)},
			[]string{"GET ", "GET "}},
	}
	// Each case under every server mode (logoutModes).
	for i := range len(tests) * len(logoutModes) {
		tt, m := tests[i/len(logoutModes)], logoutModes[i%len(logoutModes)]
		t.Run(tt.name+"/"+m.String(), func(t *testing.T) {
			f := newFixture(t, m.options(tt.opts), tt.edit...)
			rv := &revocations{}
			f.srv.SetRevokeHook(rv.hook)
			session, saved := f.login()
			if err := f.logout(session); err != nil {
				t.Fatalf("Logout: %v", err)
			}
			if strings.Join(rv.reqs, ",") != strings.Join(tt.want, ",") {
				t.Errorf("revocation requests %q, want %q", rv.reqs, tt.want)
			}
			if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
				t.Errorf("token still in session: %v", err)
			}
			if n := f.srv.RevokedGrants(); n != 1 {
				t.Errorf("revoked grants = %d, want 1", n)
			}
			if tt.opts.AuthMethod == "" {
				if status, code := serverRefresh(t, f.srv, saved.RefreshToken); status != 400 || code != "invalid_grant" {
					t.Errorf("old refresh token at the server: %d %s, want 400 invalid_grant", status, code)
				}
			}
			// Logging out again finds nothing to revoke.
			if err := f.logout(session); err != nil || f.srv.RevokeCalls() != 2 {
				t.Errorf("second Logout: %v, %d revocations", err, f.srv.RevokeCalls())
			}
		})
	}
}

func TestLogoutRevokesTheNewestToken(t *testing.T) {
	forModes(t, logoutModes, testLogoutRevokesTheNewestToken)
}

func testLogoutRevokesTheNewestToken(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}), revokeAt("/revoke", core.RevokeRFC7009))
	session, saved := f.login()
	stale := f.request(session) // holds the first token
	f.clock.Advance(time.Hour)
	newest, err := f.token(session) // rotates
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Logout(stale); err != nil { // logs out from the stale copy
		t.Fatal(err)
	}
	f.end(stale)
	if status, code := serverRefresh(t, f.srv, newest.RefreshToken); status != 400 || code != "invalid_grant" {
		t.Errorf("newest refresh token at the server: %d %s", status, code)
	}
	if saved.RefreshToken == newest.RefreshToken {
		t.Fatal("test setup: no rotation")
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("after Logout: %v", err)
	}
	f.checkReuses(0)
}

// checkReuses fails unless the server saw n reused refresh tokens.
func (f *fixture) checkReuses(n int) {
	f.t.Helper()
	if got := f.srv.Reuses(); got != n {
		f.t.Errorf("the server saw %d reused refresh tokens, want %d", got, n)
	}
}

func TestLogoutRevocationFails(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, revokeAt("/revoke", core.RevokeRFC7009))
	session, saved := f.login()
	f.srv.SetRevokeHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<h1>Service Unavailable</h1>"+string(body)) // echoes the token
	})
	err := f.logout(session)
	var re *core.RevocationError
	if !errors.As(err, &re) || re.StatusCode != 503 || re.TokenTypeHint != "refresh_token" {
		t.Fatalf("Logout = %#v, want a RevocationError for the refresh token", err)
	}
	if !errors.Is(err, core.ErrTransient) || errors.Is(err, core.ErrMisconfigured) {
		t.Errorf("class of %v", err)
	}
	for _, s := range []string{saved.RefreshToken, saved.AccessToken, "smart-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	if f.srv.RevokeCalls() != 2 {
		t.Errorf("revocation calls = %d, want 2 (refresh and access token, once each)", f.srv.RevokeCalls())
	}
	// The session is cleared all the same.
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("token still in session: %v", err)
	}
}

func TestLogoutRevocationRejected(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, revokeAt("/revoke", core.RevokeRFC7009),
		func(c *core.Config) { c.ClientSecret = "wrong" })
	session, _ := f.login()
	err := f.logout(session)
	var re *core.RevocationError
	if !errors.As(err, &re) || re.StatusCode != 401 || re.Code != "invalid_client" || !errors.Is(err, core.ErrMisconfigured) {
		t.Fatalf("Logout = %v, want invalid_client (ErrMisconfigured)", err)
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("token still in session: %v", err)
	}
}

func TestLogoutWithoutTokenOrSession(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, revokeAt("/revoke", core.RevokeRFC7009))
	if err := f.logout(""); err != nil {
		t.Errorf("no token: %v", err)
	}
	if err := f.r.Logout(context.Background()); !errors.Is(err, core.ErrNoSession) {
		t.Errorf("no session: %v", err)
	}
	if f.srv.RevokeCalls() != 0 {
		t.Errorf("%d revocation calls", f.srv.RevokeCalls())
	}
}

// TestLogoutWithoutRevocationURL: the token is removed, and a stale copy of
// the session written back later does not bring it back.
func TestLogoutWithoutRevocationURL(t *testing.T) {
	forModes(t, logoutModes, testLogoutWithoutRevocationURL)
}

func testLogoutWithoutRevocationURL(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}))
	session, _ := f.login()
	slow := f.request(session) // a slow request that loaded the token
	if _, err := f.r.Token(slow); err != nil {
		t.Fatal(err)
	}
	if err := f.logout(session); err != nil {
		t.Fatal(err)
	}
	if f.srv.RevokeCalls() != 0 || f.srv.RevokedGrants() != 0 {
		t.Errorf("revocation without a RevocationURL")
	}
	// The slow request commits its copy, token included, after the Logout.
	f.slowCommit(slow)
	_, err := f.token(session)
	if !errors.Is(err, core.ErrRevoked) || !errors.Is(err, core.ErrReauthRequired) {
		t.Fatalf("stale copy after Logout: %v, want ErrRevoked", err)
	}
	if _, err := f.token(session); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("stale copy not removed: %v", err)
	}
	if status, body := core.ErrorResponse(core.ErrRevoked); status != 401 || !strings.Contains(body.ErrorDescription, "logged out") {
		t.Errorf("ErrorResponse = %d %+v", status, body)
	}
}

// slowCommit commits ctx's copy of the session whatever its status, as
// scs's LoadAndSave does for a request that modified it.
func (f *fixture) slowCommit(ctx context.Context) {
	f.t.Helper()
	if _, _, err := f.sm.Commit(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// TestLogoutDuringRefresh: a Logout that comes while a refresh is in flight
// waits for it and revokes what it produced; nothing brings the token back.
func TestLogoutDuringRefresh(t *testing.T) { forModes(t, logoutModes, testLogoutDuringRefresh) }

func testLogoutDuringRefresh(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}), revokeAt("/revoke", core.RevokeRFC7009))
	session, _ := f.login()
	entered, release := make(chan struct{}), make(chan struct{})
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		close(entered)
		<-release
		next.ServeHTTP(w, r)
	})
	f.clock.Advance(time.Hour)

	refreshing := f.request(session)
	refreshed := make(chan *core.Token, 1)
	go func() {
		tok, err := f.r.Token(refreshing)
		if err != nil {
			t.Errorf("refresh: %v", err)
		}
		refreshed <- tok
	}()
	<-entered
	logoutDone := make(chan error, 1)
	go func() { logoutDone <- f.logout(session) }()
	select {
	case err := <-logoutDone:
		t.Fatalf("Logout did not wait for the refresh in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-logoutDone; err != nil {
		t.Fatal(err)
	}
	f.srv.SetTokenHook(nil)
	tok := <-refreshed
	f.slowCommit(refreshing) // the refreshing request ends after the Logout

	if _, err := f.token(session); !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("after Logout: %v", err)
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("refresh calls = %d, want 1", c)
	}
	f.checkReuses(0)
	if status, code := serverRefresh(t, f.srv, tok.RefreshToken); status != 400 || code != "invalid_grant" {
		t.Errorf("the refresh's token at the server: %d %s, want it revoked", status, code)
	}
}

// TestConcurrentLogoutAndRefreshes: requests of a session keep asking for
// the token while it is being logged out. No refresh token is sent twice,
// and afterwards the session has no token.
func TestConcurrentLogoutAndRefreshes(t *testing.T) {
	forModes(t, logoutModes, testConcurrentLogoutAndRefreshes)
}

func testConcurrentLogoutAndRefreshes(t *testing.T, m serverMode) {
	f := newFixture(t, m.options(smarttest.Options{}), revokeAt("/revoke", core.RevokeRFC7009))
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(10 * time.Millisecond)
		next.ServeHTTP(w, r)
	})
	f.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := f.token(session)
			if err != nil && !errors.Is(err, core.ErrReauthRequired) {
				t.Errorf("token: %v", err)
			}
		})
	}
	wg.Go(func() {
		if err := f.logout(session); err != nil {
			t.Errorf("Logout: %v", err)
		}
	})
	wg.Wait()
	if _, err := f.token(session); !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("after Logout: %v", err)
	}
	if c := f.srv.RefreshCalls(); c > 1 {
		t.Errorf("refresh calls = %d, want at most 1", c)
	}
	f.checkReuses(0)
}
