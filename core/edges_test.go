package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// bodyHook lets the server answer, then sends its answer with the body
// changed by edit: the faults proxies and servers add to real answers.
func bodyHook(edit func([]byte) []byte) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(edit(rec.Body.Bytes()))
	}
}

// TestOddAnswerIsUsed (issue 19 item 1): a 2xx answer from which a JSON
// object can be read is used, so the rotated refresh token is kept and the
// next refresh sends it, not the spent one.
func TestOddAnswerIsUsed(t *testing.T) {
	bom := []byte("\xef\xbb\xbf")
	for name, edit := range map[string]func([]byte) []byte{
		"bom":          func(b []byte) []byte { return append(bom[:3:3], b...) },
		"html comment": func(b []byte) []byte { return append(b, "<!-- node 3 -->\n"...) },
		"second value": func(b []byte) []byte { return append(b, "{\"x\":1}\n"...) },
		"bom and tail": func(b []byte) []byte { return append(append(bom[:3:3], b...), "garbage"...) },
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			session, _ := f.login()
			f.srv.SetTokenHook(bodyHook(edit))
			for range 2 {
				f.clock.Advance(time.Hour)
				if _, err := f.token(session); err != nil {
					t.Errorf("refresh: %v", err)
				}
			}
			t.Logf("%s: %d token calls, %d reuses, %d revoked grants", name, f.srv.RefreshCalls(), f.srv.Reuses(), f.srv.RevokedGrants())
			f.checkNoReuse()
			if name != "bom" && !strings.Contains(f.logs.String(), "trailing") {
				t.Errorf("the trailing bytes were not logged:\n%s", f.logs)
			}
			if bytes.Contains(f.logs.Bytes(), []byte("node 3")) {
				t.Errorf("the log repeats the answer's bytes")
			}
		})
	}
}

// jsonHook lets the server answer a refresh, then edits its JSON object.
func jsonHook(edit func(map[string]any)) func(http.ResponseWriter, *http.Request, http.Handler) {
	return bodyHook(func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil || m["access_token"] == nil {
			return b
		}
		edit(m)
		out, _ := json.Marshal(m)
		return out
	})
}

// TestErrorBodyWith200 (issue 19 item 7): a 200 whose body is an OAuth
// error and no token is classed by its error code, as a 400 would be.
func TestErrorBodyWith200(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"error":"invalid_grant","error_description":"expired"}`))
	})
	f.clock.Advance(time.Hour)
	var errs []error
	for range 5 {
		_, err := f.token(session)
		errs = append(errs, err)
	}
	t.Logf("5 requests: %d token calls; first error %v", f.srv.RefreshCalls(), errs[0])
	var te *core.TokenError
	if !errors.Is(errs[0], core.ErrReauthRequired) || !errors.As(errs[0], &te) || te.Code != "invalid_grant" {
		t.Fatalf("first error %v, want a *TokenError invalid_grant matching ErrReauthRequired", errs[0])
	}
	for _, err := range errs[1:] {
		if !errors.Is(err, core.ErrReauthRequired) {
			t.Errorf("later error %v, want ErrReauthRequired", err)
		}
	}
	if n := f.srv.RefreshCalls(); n != 1 {
		t.Errorf("%d token calls, want 1", n)
	}
}

// TestNarrowedScopeReported (issue 19 item 4): with Config.Scope narrowing
// the refresh and an answer that omits scope (RFC 6749 section 5.1: as
// requested), the token's scope is the requested one.
func TestNarrowedScopeReported(t *testing.T) {
	const narrow = "patient/*.read offline_access"
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Scope = narrow })
	session, saved := f.login()
	f.srv.SetTokenHook(jsonHook(func(m map[string]any) { delete(m, "scope") }))
	f.clock.Advance(time.Hour)
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.r.Info(f.request(session))
	t.Logf("login scope %q; after the refresh: tok.Scope %q, Info().Scope %q", saved.Scope, tok.Scope, info.Scope)
	if tok.Scope != narrow || info.Scope != narrow {
		t.Errorf("scope after a narrowed refresh: %q / %q, want %q", tok.Scope, info.Scope, narrow)
	}
}

// TestRefreshKeepsLaunchPatient (issue 19 item 9): a refresh answer naming
// another patient or encounter does not change the launch context; the
// mismatch is logged and reported to the hooks.
func TestRefreshKeepsLaunchPatient(t *testing.T) {
	var infos []core.RefreshInfo
	f := newFixture(t, smarttest.Options{Encounter: "e1"}, func(c *core.Config) {
		c.OnRefresh = func(i core.RefreshInfo) { infos = append(infos, i) }
	})
	session, _ := f.login()
	f.srv.SetTokenHook(jsonHook(func(m map[string]any) { m["patient"], m["encounter"] = "456", "e2" }))
	f.clock.Advance(time.Hour)
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after a refresh naming patient 456: tok.Patient %q, tok.Encounter %q", tok.Patient, tok.Encounter)
	if tok.Patient != "123" || tok.Encounter != "e1" {
		t.Errorf("the refresh changed the launch context to %q/%q", tok.Patient, tok.Encounter)
	}
	if len(infos) != 1 || !slices.Equal(infos[0].ContextMismatch, []string{"encounter", "patient"}) {
		t.Errorf("OnRefresh got %+v, want ContextMismatch [encounter patient]", infos)
	}
	if !strings.Contains(f.logs.String(), "level=WARN") || !strings.Contains(f.logs.String(), "launch context") {
		t.Errorf("no warning logged:\n%s", f.logs)
	}
}

// TestReloginWithSameTokenValues (issue 19 item 2): a server that hands a
// new login the same token values (Spring Security OAuth2's default token
// services; the SMART reference launcher within one second) does not lock
// the user out after a Logout without RevocationURL; a stale copy of the
// logged-out session stays refused.
func TestReloginWithSameTokenValues(t *testing.T) {
	for _, refresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("refresh=%v", refresh), func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			old, tok := f.login()
			if refresh {
				// The first login's grant refreshed once, then the server
				// hands the newest values again at the next login.
				f.clock.Advance(time.Hour)
				var err error
				if tok, err = f.token(old); err != nil {
					t.Fatal(err)
				}
			}
			stale := f.request(old)
			if _, err := f.r.Token(stale); err != nil {
				t.Fatal(err)
			}
			if err := f.logout(old); err != nil {
				t.Fatal(err)
			}
			// The user logs in again; the server answers the same values.
			ctx := f.request("")
			same := *tok
			if err := f.r.Save(ctx, &same); err != nil {
				t.Fatalf("Save of the new login: %v", err)
			}
			f.end(ctx)
			session := f.sm.Token(ctx)
			failed := 0
			for range 3 {
				if _, err := f.token(session); err != nil {
					failed++
					t.Logf("new login refused: %v", err)
				}
			}
			f.clock.Advance(time.Hour) // and its refresh works too
			if _, err := f.token(session); err != nil {
				failed++
				t.Logf("new login's refresh refused: %v", err)
			}
			t.Logf("%d of 4 requests of the new login failed", failed)
			if failed > 0 {
				t.Errorf("the new login was refused")
			}
			// The stale copy of the old session stays refused.
			f.slowCommit(stale)
			if _, err := f.token(old); !errors.Is(err, core.ErrRevoked) {
				t.Errorf("stale copy of the logged-out session: %v, want ErrRevoked", err)
			}
			f.checkNoReuse()
		})
	}
}

// TestReauthOncePerGrant (issue 19 item 10): a grant ended by invalid_grant
// is reported to OnReauth once, with its true reason, however many
// requests of the session meet its end.
func TestReauthOncePerGrant(t *testing.T) {
	var mu sync.Mutex
	var reasons []error
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.OnReauth = func(i core.ReauthInfo) { mu.Lock(); reasons = append(reasons, i.Reason); mu.Unlock() }
	})
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(2 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"error":"invalid_grant"}`))
	})
	twice := 0
	for burst := range 10 {
		mu.Lock()
		reasons = nil
		mu.Unlock()
		session, _ := f.login()
		f.clock.Advance(time.Hour)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { f.token(session) })
		}
		wg.Wait()
		mu.Lock()
		got := slices.Clone(reasons)
		mu.Unlock()
		if len(got) != 1 {
			twice++
			t.Errorf("burst %d: OnReauth called %d times: %v", burst, len(got), got)
			continue
		}
		var te *core.TokenError
		if !errors.As(got[0], &te) || te.Code != "invalid_grant" {
			t.Errorf("burst %d: reason %v, want the invalid_grant *TokenError", burst, got[0])
		}
	}
	t.Logf("%d of 10 bursts reported a grant more than once", twice)
}

// selective401 makes the FHIR server reject every token on Observation and
// accept it on Patient, as one node behind round-robin or a gateway in
// front of one resource does.
func selective401(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if strings.Contains(r.URL.Path, "/Observation") {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	next.ServeHTTP(w, r)
}

// TestSelective401CoolDown (issue 19 item 3): ten rounds of (Patient,
// Observation) in 10 s at a server that rejects every token on Observation
// make one 401-triggered refresh, through Client and through FHIRProxy:
// a token whose replay was rejected stays under TokenRejectedCoolDown even
// when other requests with it succeed.
func TestSelective401CoolDown(t *testing.T) {
	rounds := func(t *testing.T, f *fixture, get func(path string) int) {
		f.srv.SetFHIRHook(selective401)
		for range 10 {
			if code := get("/Patient/123"); code != 200 {
				t.Errorf("Patient: %d", code)
			}
			if code := get("/Observation?patient=123"); code == 200 {
				t.Errorf("Observation: %d", code)
			}
			f.clock.Advance(time.Second)
		}
		t.Logf("10 rounds in 10 s: %d token calls", f.srv.RefreshCalls())
		if n := f.srv.RefreshCalls(); n > 1 {
			t.Errorf("%d token calls, want at most 1 per cool-down", n)
		}
		// After the cool-down, one 401 may trigger one refresh again.
		f.clock.Advance(core.TokenRejectedCoolDown)
		before := f.srv.RefreshCalls()
		for range 3 {
			get("/Observation?patient=123")
		}
		if n := f.srv.RefreshCalls() - before; n != 1 {
			t.Errorf("after the cool-down: %d token calls, want 1", n)
		}
	}
	t.Run("Client", func(t *testing.T) {
		f := newFixture(t, smarttest.Options{})
		session, _ := f.login()
		rounds(t, f, func(path string) int {
			ctx := f.request(session)
			defer f.end(ctx)
			resp, err := f.r.Client(ctx).Get(f.srv.FHIRBaseURL + path)
			if err != nil {
				if errors.Is(err, core.ErrTokenRejected) {
					return 401
				}
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		})
	})
	t.Run("FHIRProxy", func(t *testing.T) {
		a := newProxyApp(t, smarttest.Options{}, core.ProxyConfig{})
		rounds(t, a.fixture, func(path string) int {
			resp := a.do("GET", "/fhir"+path, nil)
			resp.Body.Close()
			return resp.StatusCode
		})
	})
}

// TestRevokedAfterAcceptedGetsOneRefresh (issue 19 item 3): a server that
// revokes a token it had accepted still gets its one new refresh, even
// within the cool-down of the refresh that produced it.
func TestRevokedAfterAcceptedGetsOneRefresh(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	get := func() (int, error) {
		ctx := f.request(session)
		defer f.end(ctx)
		resp, err := f.r.Client(ctx).Get(f.srv.FHIRBaseURL + "/Patient/123")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for i := range 2 {
		f.srv.ExpireAccessTokens() // the server revokes the token it accepted
		if code, err := get(); code != 200 {
			t.Fatalf("request %d after the server revoked its token: %d %v", i, code, err)
		}
		f.clock.Advance(time.Second)
	}
	if n := f.srv.RefreshCalls(); n != 2 {
		t.Errorf("%d token calls, want 2", n)
	}
}

// sleepOnClock makes the refresher's waits (retries, the lost-answer
// resend) pass on the fixture's clock, at once.
func (f *fixture) sleepOnClock() {
	core.SetSleep(f.r, func(ctx context.Context, d time.Duration) error {
		f.clock.Advance(d)
		return ctx.Err()
	})
}

// TestOutageBacksOff (issue 19 item 5): with the token endpoint down (500,
// 502, bare 503) for 2 minutes, one session at 10 requests/s backs off: the
// old access token is used while it is valid, then the answer is 503 with
// Retry-After; at most 15 token calls, no reuse, and the session is kept.
func TestOutageBacksOff(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	f.sleepOnClock()
	session, saved := f.login()
	var down atomic.Bool
	down.Store(true)
	var n atomic.Int64
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !down.Load() {
			next.ServeHTTP(w, r)
			return
		}
		w.WriteHeader([]int{500, 502, 503}[n.Add(1)%3])
	})
	// 30 s of the access token left: due, and valid for a quarter of the
	// outage.
	f.clock.Advance(time.Hour - 30*time.Second)
	var old, unavailable, withRetryAfter, other int
	start := f.clock.Now()
	for f.clock.Now().Sub(start) < 2*time.Minute {
		tok, err := f.token(session)
		switch {
		case err == nil && tok.AccessToken == saved.AccessToken:
			old++
		case err != nil && errors.Is(err, core.ErrTransient):
			unavailable++
			if status, _ := core.ErrorResponse(err); status != 503 {
				t.Errorf("status %d, want 503", status)
			}
			if _, ok := core.RetryAfter(err); ok {
				withRetryAfter++
			}
		default:
			other++
			t.Errorf("during the outage: %v", err)
		}
		f.clock.Advance(100 * time.Millisecond)
	}
	calls := f.srv.RefreshCalls()
	t.Logf("2-minute outage at 10 req/s: %d token calls; %d answers with the old token, %d 503s (%d with Retry-After), %d other",
		calls, old, unavailable, withRetryAfter, other)
	if calls > 15 {
		t.Errorf("%d token calls during the outage, want at most 15", calls)
	}
	if withRetryAfter != unavailable {
		t.Errorf("%d of %d 503s without Retry-After", unavailable-withRetryAfter, unavailable)
	}
	down.Store(false)
	f.clock.Advance(time.Minute) // the backoff's longest wait
	if _, err := f.token(session); err != nil {
		t.Errorf("after the outage: %v", err)
	}
	f.checkNoReuse()
}

// lostOnce loses the answer to the first refresh: the server rotates, the
// client gets a 502 from the gateway.
func lostOnce() func(http.ResponseWriter, *http.Request, http.Handler) {
	var lost atomic.Bool
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if lost.CompareAndSwap(false, true) {
			next.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		next.ServeHTTP(w, r)
	}
}

// TestLostAnswerResent (issue 19 item 6): the answer to a refresh is lost.
// At a server with a 30 s reuse grace window the refresher's prompt resend
// recovers the session even if its next request comes after the window; at
// a strict server the outcome is one clean re-login; the resend can be
// turned off.
func TestLostAnswerResent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		grace  time.Duration
		resend time.Duration
	}{
		{"grace 30s", 30 * time.Second, 0},
		{"strict", 0, 0},
		{"grace 30s, resend off", 30 * time.Second, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reauths, resent atomic.Int64
			f := newFixture(t, smarttest.Options{ReuseGraceWindow: tc.grace}, func(c *core.Config) {
				c.ResendAfter = tc.resend
				c.OnReauth = func(core.ReauthInfo) { reauths.Add(1) }
				c.OnRefresh = func(i core.RefreshInfo) {
					if i.Resent {
						resent.Add(1)
					}
				}
				c.OnRefreshError = func(i core.RefreshErrorInfo) {
					if i.Resent {
						resent.Add(1)
					}
				}
			})
			f.sleepOnClock()
			session, _ := f.login()
			f.srv.SetTokenHook(lostOnce())
			f.clock.Advance(time.Hour)
			_, err1 := f.token(session)
			f.clock.Advance(31 * time.Second) // the session's next request
			_, err2 := f.token(session)
			t.Logf("%s: first request %v; 31 s later %v; %d token calls, %d grace resends, %d reuses, %d revoked grants, %d re-auths, %d resends reported",
				tc.name, err1, err2, f.srv.RefreshCalls(), f.srv.GraceResends(), f.srv.Reuses(), f.srv.RevokedGrants(), reauths.Load(), resent.Load())
			switch tc.name {
			case "grace 30s":
				if err1 != nil || err2 != nil || f.srv.RevokedGrants() != 0 || f.srv.GraceResends() != 1 {
					t.Errorf("the session was not recovered by the resend")
				}
				if resent.Load() != 1 || !strings.Contains(f.logs.String(), "resending") {
					t.Errorf("the resend was not reported and logged:\n%s", f.logs)
				}
			case "strict":
				if !errors.Is(err1, core.ErrReauthRequired) || !errors.Is(err2, core.ErrNoToken) {
					t.Errorf("strict server: %v, %v; want one clean re-login", err1, err2)
				}
				if f.srv.Reuses() != 1 || reauths.Load() != 1 {
					t.Errorf("strict server: %d reuses, %d re-auths; want 1 and 1", f.srv.Reuses(), reauths.Load())
				}
			default:
				if f.srv.GraceResends() != 0 || resent.Load() != 0 || !errors.Is(err1, core.ErrOutcomeUnknown) {
					t.Errorf("resend off: resent anyway")
				}
			}
		})
	}
}

// TestNoRefreshToken401KeepsSession (issue 19 item 8): one 401 to a session
// without a refresh token, whose access token is still valid, is passed
// through and the session kept; the session ends when the token expires, or
// when the FHIR server has rejected every request for TokenRejectedCoolDown.
func TestNoRefreshToken401KeepsSession(t *testing.T) {
	f := newFixture(t, smarttest.Options{NoRefreshToken: true})
	session, _ := f.login()
	var reject atomic.Int64
	f.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if reject.Add(-1) >= 0 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
	get := func() (int, error) {
		ctx := f.request(session)
		defer f.end(ctx)
		resp, err := f.r.Client(ctx).Get(f.srv.FHIRBaseURL + "/Patient/123")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	reject.Store(1)
	code, err := get()
	t.Logf("one 401 to a session without a refresh token: %d %v", code, err)
	if code != 401 || err != nil {
		t.Errorf("got %d %v, want the 401 passed through", code, err)
	}
	if code, err := get(); code != 200 {
		t.Fatalf("next request: %d %v, want 200 (session kept)", code, err)
	}
	// Every request rejected for the cool-down: the session ends.
	reject.Store(1 << 20)
	var last error
	for range 70 {
		if _, last = get(); last != nil {
			break
		}
		f.clock.Advance(time.Second)
	}
	if !errors.Is(last, core.ErrNoRefreshToken) {
		t.Errorf("after a minute of 401s: %v, want ErrNoRefreshToken", last)
	}
	if _, err := f.r.Info(f.request(session)); !errors.Is(err, core.ErrNoToken) {
		t.Errorf("session token after a minute of 401s: %v, want removed", err)
	}
}

// TestRefusedLoginRevoked (issue 19 item 13): a login refused for a bad
// id_token does not leave its tokens alive at the server when RevocationURL
// is set.
func TestRefusedLoginRevoked(t *testing.T) {
	a := newLaunchApp(t, launchOptions{
		server:    smarttest.Options{IDTokenClaims: func(c map[string]any) { delete(c, "nonce") }},
		refresher: func(c *core.Config) { c.RevocationURL = strings.TrimSuffix(c.TokenURL, "/token") + "/revoke" },
	})
	b := newBrowser(t)
	res := a.login(b, "")
	t.Logf("callback %d; %d revocation calls, %d revoked grants", res.status, a.srv.RevokeCalls(), a.srv.RevokedGrants())
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, "invalid_id_token") {
		t.Fatalf("callback: %d %s, want 401 invalid_id_token", res.status, res.body)
	}
	if a.srv.RevokeCalls() != 2 || a.srv.RevokedGrants() != 1 {
		t.Errorf("%d revocation calls, %d revoked grants; want 2 and 1", a.srv.RevokeCalls(), a.srv.RevokedGrants())
	}
	a.loggedOut(b)
}

// TestSaveOverGrantRevokesIt (issue 19 item 13): Save of a new login over
// an existing grant revokes the replaced grant when RevocationURL is set;
// the new login works, and saving the session's own token again revokes
// nothing.
func TestSaveOverGrantRevokesIt(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.RevocationURL = strings.TrimSuffix(c.TokenURL, "/token") + "/revoke"
	})
	session, first := f.login()
	ctx := f.request(session)
	if err := f.r.Save(ctx, first); err != nil { // the same login again
		t.Fatal(err)
	}
	f.end(ctx)
	if n := f.srv.RevokeCalls(); n != 0 {
		t.Fatalf("saving the session's own token again: %d revocation calls", n)
	}
	session = f.sm.Token(ctx)
	ctx = f.request(session)
	if err := f.r.Save(ctx, f.srv.Grant()); err != nil {
		t.Fatal(err)
	}
	f.end(ctx)
	session = f.sm.Token(ctx)
	t.Logf("Save of a new login over a grant: %d revocation calls, %d revoked grants", f.srv.RevokeCalls(), f.srv.RevokedGrants())
	if f.srv.RevokeCalls() != 2 || f.srv.RevokedGrants() != 1 {
		t.Errorf("%d revocation calls, %d revoked grants; want 2 and 1", f.srv.RevokeCalls(), f.srv.RevokedGrants())
	}
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); err != nil {
		t.Errorf("the new login: %v", err)
	}
}

// TestLostAnswerResentAfterCallerLeft (issue 19 item 6): the prompt resend
// happens in the background when the request that started the refresh has
// gone.
func TestLostAnswerResentAfterCallerLeft(t *testing.T) {
	f := newFixture(t, smarttest.Options{ReuseGraceWindow: 30 * time.Second}, func(c *core.Config) {
		c.ResendAfter = 50 * time.Millisecond
	})
	session, _ := f.login()
	ctx, cancel := context.WithCancel(f.request(session))
	lost := lostOnce()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		cancel() // the user closed the page while the token call was out
		lost(w, r, next)
	})
	f.clock.Advance(time.Hour)
	if _, err := f.r.Token(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.GraceResends() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.srv.GraceResends() != 1 {
		t.Fatalf("no resend after the caller left")
	}
	for time.Now().Before(deadline) { // the flight persists its result
		if info, err := f.r.Info(f.request(session)); err == nil && info.Refreshes == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.clock.Advance(31 * time.Second)
	if _, err := f.token(session); err != nil {
		t.Errorf("the session's next request: %v", err)
	}
	f.checkNoReuse()
}

// TestOutageStorm (issue 19 item 5): 300 concurrent requests of one session
// during an outage share one refresh and its one resend; the requests
// after it back off without a token call.
func TestOutageStorm(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	core.SetSleep(f.r, (&sleeps{}).sleep)
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) { w.WriteHeader(502) })
	f.clock.Advance(2 * time.Hour)
	for wave := range 3 {
		var wg sync.WaitGroup
		var transient atomic.Int64
		for range 300 {
			wg.Go(func() {
				if _, err := f.token(session); errors.Is(err, core.ErrTransient) {
					transient.Add(1)
				}
			})
		}
		wg.Wait()
		if transient.Load() != 300 {
			t.Errorf("wave %d: %d of 300 transient errors", wave, transient.Load())
		}
	}
	t.Logf("3 waves of 300 requests in an outage: %d token calls", f.srv.RefreshCalls())
	if n := f.srv.RefreshCalls(); n > 2 {
		t.Errorf("%d token calls, want at most 2 (a refresh and its resend)", n)
	}
	f.checkNoReuse()
}
