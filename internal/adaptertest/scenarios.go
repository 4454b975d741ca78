package adaptertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// The scenarios below take the app as an App, built by the adapter's tests
// with the middleware options the scenario's documentation asks for (none
// unless it says otherwise).

// HappyPath: after login, /api/me answers the access token, /api/patient
// reads the patient through the Refresher's client, and neither refreshes.
func HappyPath(t *testing.T, app App) {
	f := Start(t, app)
	f.Login()
	tok := f.Me(f.URL)
	if tok == "" {
		t.Fatal("empty access token")
	}
	if code, _, body := f.Get(f.URL, "/api/patient"); code != http.StatusOK || !strings.Contains(body, `"Patient"`) {
		t.Fatalf("/api/patient: %d %s", code, body)
	}
	if f.Server.FHIRCalls() != 1 || f.Server.RefreshCalls() != 0 {
		t.Errorf("FHIRCalls=%d RefreshCalls=%d, want 1 and 0", f.Server.FHIRCalls(), f.Server.RefreshCalls())
	}
	if again := f.Me(f.URL); again != tok {
		t.Errorf("access token changed without a refresh")
	}
}

// NoToken: a session without a token gets the default 401
// reauth_required JSON.
func NoToken(t *testing.T, app App) {
	f := Start(t, app)
	code, _, body := f.Get(f.URL, "/api/me")
	var e core.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusUnauthorized || e.Error != "reauth_required" {
		t.Fatalf("got %d %s, want 401 reauth_required", code, body)
	}
}

// ErrorHandler: app's error handler stores its error in *got and
// redirects (302) to /launch. A request without a token gets that answer,
// and the handler core.ErrNoToken.
func ErrorHandler(t *testing.T, app App, got *error) {
	f := Start(t, app)
	resp, err := f.Client.Get(f.URL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/launch" {
		t.Fatalf("got %d Location %q, want 302 to /launch", resp.StatusCode, resp.Header.Get("Location"))
	}
	if *got != core.ErrNoToken {
		t.Errorf("error handler got %v, want core.ErrNoToken", *got)
	}
}

// Skipper: app's skipper skips /api/public, which runs without a token;
// /api/me still requires one.
func Skipper(t *testing.T, app App) {
	f := Start(t, app)
	if code, _, body := f.Get(f.URL, "/api/public"); code != http.StatusOK || body != "no token" {
		t.Errorf("skipped route: %d %s, want 200 without a token", code, body)
	}
	if code, _, _ := f.Get(f.URL, "/api/me"); code != http.StatusUnauthorized {
		t.Errorf("other route: %d, want 401", code)
	}
}

// NoSessionManager: without LoadAndSave the middleware answers 500.
func NoSessionManager(t *testing.T, app App) {
	f := NewEnv(t)
	rec := httptest.NewRecorder()
	app(f, f.Refresher).ServeHTTP(rec, httptest.NewRequest("GET", "/api/me", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("without LoadAndSave: %d, want 500", rec.Code)
	}
}

// RefreshStorm: 200 concurrent requests of a session whose access token
// expired make one refresh, no reuse, and all get the new token, which is
// persisted.
func RefreshStorm(t *testing.T, app App) {
	f := Start(t, app)
	f.Login()
	old := f.Me(f.URL)
	f.Clock.Advance(time.Hour + time.Second)

	codes, bodies := f.Storm(200, "/api/me")
	for i := range codes {
		if codes[i] != http.StatusOK || bodies[i] != bodies[0] {
			t.Fatalf("request %d: %d %q, want 200 and the token of request 0", i, codes[i], bodies[i])
		}
	}
	if bodies[0] == old {
		t.Fatal("the access token was not refreshed")
	}
	if f.Server.RefreshCalls() != 1 || f.Server.Reuses() != 0 {
		t.Fatalf("RefreshCalls=%d Reuses=%d, want 1 and 0", f.Server.RefreshCalls(), f.Server.Reuses())
	}

	// A later request uses the new token without another refresh, and so
	// does a fresh Refresher over the same sessions (a restart, with no
	// memory of the refresh): the rotated token was persisted.
	if tok := f.Me(f.URL); tok != bodies[0] {
		t.Error("a later request got another token")
	}
	restarted := f.Serve(app(f, f.NewRefresher()))
	if tok := f.Me(restarted); tok != bodies[0] {
		t.Error("after a restart the session holds another token")
	}
	if f.Server.RefreshCalls() != 1 || f.Server.Reuses() != 0 {
		t.Errorf("RefreshCalls=%d Reuses=%d after the storm, want 1 and 0", f.Server.RefreshCalls(), f.Server.Reuses())
	}
}

// RejectedToken: when the FHIR server rejects the access token, 50
// concurrent requests make one refresh, no reuse, and all succeed.
func RejectedToken(t *testing.T, app App) {
	f := Start(t, app)
	f.Login()
	f.Server.ExpireAccessTokens()

	codes, bodies := f.Storm(50, "/api/patient")
	for i := range codes {
		if codes[i] != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if f.Server.RefreshCalls() != 1 || f.Server.Reuses() != 0 {
		t.Fatalf("RefreshCalls=%d Reuses=%d, want 1 and 0", f.Server.RefreshCalls(), f.Server.Reuses())
	}
}

// Transient: a 503 of the token endpoint reaches the client with its
// Retry-After, and the next request refreshes.
func Transient(t *testing.T, app App) {
	f := Start(t, app)
	f.Login()
	old := f.Me(f.URL)
	f.Clock.Advance(time.Hour + time.Second)
	f.Server.SetTokenHook(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	code, retry, body := f.Get(f.URL, "/api/me")
	if code != http.StatusServiceUnavailable || retry != "7" {
		t.Fatalf("got %d Retry-After %q %s, want 503 with Retry-After 7", code, retry, body)
	}

	f.Server.SetTokenHook(nil)
	f.Clock.Advance(7 * time.Second) // the grant backs off as long as the server asked
	if tok := f.Me(f.URL); tok == old {
		t.Error("the access token was not refreshed")
	}
	if f.Server.RefreshCalls() != 2 || f.Server.Reuses() != 0 {
		t.Errorf("RefreshCalls=%d Reuses=%d, want 2 (one failed) and 0", f.Server.RefreshCalls(), f.Server.Reuses())
	}
}

// RouterWide checks the middleware installed on every route of a router
// (echo's e.Use, gin's router.Use) in its Config form. router must build
// that router, without LoadAndSave: the middleware over r skipping
// /login, with an error handler that answers 418; GET /login as App's;
// GET /me answering the attached access token. With emptyError, the
// answer without a token must also have an empty body (the error handler
// neither writes nor aborts, so the protected handler must not run).
func RouterWide(t *testing.T, router App, emptyError bool) {
	f := NewEnv(t)
	url := f.Serve(router(f, f.Refresher))
	if code, _, body := f.Get(url, "/me"); code != http.StatusTeapot || emptyError && body != "" {
		t.Errorf("no token: %d %q, want the error handler's 418 (empty: %v)", code, body, emptyError)
	}
	if code, _, body := f.Get(url, "/login"); code != http.StatusNoContent {
		t.Fatalf("login: %d %s", code, body)
	}
	if code, _, body := f.Get(url, "/me"); code != http.StatusOK || body == "" {
		t.Errorf("after login: %d %q", code, body)
	}
}

// Allocs checks that the hot path allocates only the context of Attach,
// the request copy of WithContext and, inside scs, the boxing of its
// string context key by SessionManager.Get: at most 3 allocations. hotPath
// gets the Refresher and a request of a logged-in session; the function it
// returns serves that request with the adapter's middleware (and nothing
// else) and reports whether the middleware attached a token.
//
// The same holds for a session of one launch and of four launches made by
// a Launcher, the request naming one of them in X-SMART-Launch.
func Allocs(t *testing.T, hotPath func(r *core.Refresher, req *http.Request) func() (attached bool)) {
	f := NewEnv(t)
	req := httptest.NewRequest("GET", "/api/me", nil).WithContext(f.LoggedIn())
	checkAllocs(t, "a session saved by Save", hotPath(f.Refresher, req))

	patients := map[string]string{"l1": "P1", "l2": "P2", "l3": "P3", "l4": "P4"}
	for _, n := range []int{1, 4} {
		f := NewEnv(t, WithLaunches(patients))
		var id string
		for i := range n {
			id = f.Launch(fmt.Sprintf("l%d", i+1))
		}
		req := httptest.NewRequest("GET", "/api/me", nil).WithContext(f.LaunchSession())
		req.Header.Set(core.LaunchHeader, id)
		checkAllocs(t, fmt.Sprintf("%d launches, one named", n), hotPath(f.Refresher, req))
	}
}

func checkAllocs(t *testing.T, what string, serve func() bool) {
	t.Helper()
	ok := false
	if n := testing.AllocsPerRun(100, func() { ok = serve() }); n > 3 {
		t.Errorf("%s: %v allocations per request, want at most 3", what, n)
	}
	if !ok {
		t.Errorf("%s: no token attached", what)
	}
}

// Panics checks that f panics; what names f in the failure.
func Panics(t *testing.T, what string, f func()) {
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// Launches: two EHR launches in one browser session, for patients A and
// B. Behind the middleware each request gets the token of the launch it
// names (X-SMART-Launch, or smart_launch in the query), the most recent
// launch when it names none, and ErrLaunchGone (the JSON 401) for a launch
// the session does not hold. At expiry, 50 requests per launch at once
// make one token call per launch, and no refresh token goes out twice.
func Launches(t *testing.T, app App) {
	f := Start(t, app, WithLaunches(map[string]string{"ehr-a": "A", "ehr-b": "B"}))
	idA, idB := f.Launch("ehr-a"), f.Launch("ehr-b")
	me := func(query, launch string) (int, string) {
		req, _ := http.NewRequest("GET", f.URL+"/api/me"+query, nil)
		if launch != "" {
			req.Header.Set(core.LaunchHeader, launch)
		}
		resp, err := f.Client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	_, tokA := me("", idA)
	_, tokB := me("", idB)
	if tokA == tokB || tokA == "" || tokB == "" {
		t.Fatal("the two launches got the same token")
	}
	if _, tok := me("?"+core.LaunchParam+"="+idA, ""); tok != tokA {
		t.Error("smart_launch in the query did not name launch A")
	}
	if _, tok := me("", ""); tok != tokB {
		t.Error("a request naming no launch did not get the most recent one")
	}
	if code, body := me("", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"); code != http.StatusUnauthorized || !strings.Contains(body, "reauth_required") {
		t.Errorf("a launch the session does not hold: %d %s, want the JSON 401", code, body)
	}
	f.Clock.Advance(time.Hour)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string]map[string]bool{idA: {}, idB: {}} // launch → tokens seen
	)
	for id, old := range map[string]string{idA: tokA, idB: tokB} {
		for range 50 {
			wg.Go(func() {
				code, tok := me("", id)
				if code != http.StatusOK || tok == old {
					t.Errorf("storm: %d, the old token %v", code, tok == old)
				}
				mu.Lock()
				got[id][tok] = true
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for tok := range got[idA] {
		if len(got[idA]) != 1 || len(got[idB]) != 1 || got[idB][tok] {
			t.Errorf("storm: launch A saw %d tokens, B %d, shared %v; want one each, not shared", len(got[idA]), len(got[idB]), got[idB][tok])
		}
	}
	if n := f.Server.RefreshCalls(); n != 2 {
		t.Errorf("refresh calls = %d, want 2 (one per launch)", n)
	}
	if n := f.Server.Reuses(); n != 0 {
		t.Errorf("reuses = %d, want 0", n)
	}
}
