// Package demotest holds the end-to-end tests every example runs against
// its own router: the launch, the patient page and API, a refresh after the
// clock passes the token's expiry, logging out, the Prometheus metrics, and
// the demo's run function.
package demotest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
)

// TokenTTL is the access token lifetime of the test server.
const TokenTTL = 30 * time.Second

// PatientName is the name of the mock server's launch patient.
const PatientName = "Amy V. Shaw"

// Clock is a controllable clock, shared by the mock server and the app.
type Clock = smarttest.Clock

// NewClock returns a clock set to the real time.
func NewClock() *Clock { return smarttest.NewClock(time.Now()) }

// Env is an example app served by an httptest server, with the embedded
// mock SMART server and a shared clock.
type Env struct {
	t      *testing.T
	URL    string
	Client *http.Client // a browser: cookie jar, follows redirects
	Mock   *smarttest.Server
	Clock  *Clock
	Logs   *Buffer

	mu      sync.Mutex
	secrets []string // tokens the mock server issued
	access  string   // the access token issued last
	refresh string   // the refresh token issued last
	strip   []string // fields removed from the token answers
}

// StripFromTokenAnswers removes fields (such as "patient") from every
// answer of the mock server's token endpoint from now on, as a server that
// does not send them would.
func (e *Env) StripFromTokenAnswers(fields ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.strip = append(e.strip, fields...)
}

// Start serves build(app) for an app configured with the demo's flags args
// against a fresh mock server, as the example's run would, but with a
// controllable clock.
func Start(t *testing.T, name string, build func(*demo.App) http.Handler, args ...string) *Env {
	t.Helper()
	e := &Env{t: t, Clock: NewClock(), Logs: &Buffer{}}
	ts := httptest.NewUnstartedServer(nil)
	cfg, err := demo.ParseFlags(name, args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TokenTTL = TokenTTL
	cfg.RedirectURL = "http://" + ts.Listener.Addr().String() + "/callback"
	e.Mock = demo.StartMock(&cfg, e.Clock.Now)
	t.Cleanup(e.Mock.Close)
	e.Mock.SetTokenHook(e.recordTokens)

	app, err := demo.New(cfg, demo.Options{
		Name:   name,
		Now:    e.Clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	ts.Config.Handler = build(app)
	ts.Start()
	t.Cleanup(ts.Close)
	e.URL = ts.URL
	e.Client = browser(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("app logs:\n%s", e.Logs)
		}
	})
	return e
}

func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// recordTokens is a token endpoint hook that remembers every token issued,
// so that the test can check none of them leaks.
func (e *Env) recordTokens(w http.ResponseWriter, r *http.Request, next http.Handler) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	var answer map[string]any
	body := rec.Body.Bytes()
	if json.Unmarshal(body, &answer) == nil {
		e.mu.Lock()
		if len(e.strip) > 0 {
			for _, f := range e.strip {
				delete(answer, f)
			}
			body, _ = json.Marshal(answer)
			rec.Header().Del("Content-Length")
		}
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, ok := answer[k].(string); ok && s != "" {
				e.secrets = append(e.secrets, s)
			}
		}
		if s, ok := answer["access_token"].(string); ok && s != "" {
			e.access = s
		}
		if s, ok := answer["refresh_token"].(string); ok && s != "" {
			e.refresh = s
		}
		e.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// AssertNoSecret fails the test if text contains a token the mock server
// issued or the client secret.
func (e *Env) AssertNoSecret(what, text string) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range append(e.secrets, e.Mock.Options().ClientSecret) {
		if strings.Contains(text, s) {
			e.t.Errorf("%s contains a token or the client secret", what)
		}
	}
}

// Proxy reads path through the app's FHIR proxy, as the page's script
// does, and returns the status and body.
func (e *Env) Proxy(path string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL+demo.ProxyPrefix+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-CSRF", "1")
	resp, err := e.Client.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// Get requests path of the app and returns the status and body.
func (e *Env) Get(path string) (int, string) {
	e.t.Helper()
	return get(e.t, e.Client, e.URL+path)
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// Flow runs the whole story: launch, the patient page and API, then the
// clock passes the token's expiry and the next API call refreshes the token
// exactly once without ever reusing a refresh token.
func Flow(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)

	status, body := e.Get("/")
	if status != http.StatusOK || !strings.Contains(body, `href="/launch"`) {
		t.Fatalf("GET / logged out: %d, want 200 with a Launch link:\n%s", status, body)
	}

	// /launch → /authorize (auto-approved) → /callback → /
	status, body = e.Get("/launch")
	if status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		t.Fatalf("after the launch, GET /: %d, want 200 with the patient page:\n%s", status, body)
	}
	// The page's script reads the patient through the FHIR proxy.
	if status, body := e.Proxy("Patient/123"); status != http.StatusOK || !strings.Contains(body, `"family":"Shaw"`) {
		t.Fatalf("GET /fhir/Patient/123: %d %s", status, body)
	}
	if !strings.Contains(body, `id="countdown"`) || !strings.Contains(body, `id="refreshes">0<`) {
		t.Errorf("home page lacks the countdown or the refresh count 0:\n%s", body)
	}
	if !strings.Contains(body, `<dd id="server">`+e.Mock.FHIRBaseURL) || !strings.Contains(body, `id="fhir-user"`) {
		t.Errorf("home page does not show the FHIR server and the user:\n%s", body)
	}
	if strings.Contains(body, "in now") || strings.Contains(body, `"in " + s + " s" : "now`) {
		t.Errorf("the countdown can read \"in now (expired)\":\n%s", body)
	}
	e.AssertNoSecret("home page", body)

	status, body = e.Get("/api/patient")
	if status != http.StatusOK {
		t.Fatalf("GET /api/patient: %d %s", status, body)
	}
	var patient struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &patient); err != nil || patient.ResourceType != "Patient" {
		t.Fatalf("GET /api/patient: not a Patient (%v): %s", err, body)
	}
	tv := e.TokenView()
	if tv.Refreshes != 0 || tv.Patient != patient.ID || tv.ExpiresAt == "" || tv.Scope == "" {
		t.Errorf("/api/token before expiry = %+v", tv)
	}
	// The mock server's signed id_token, validated by the Launcher.
	if want := e.Mock.FHIRBaseURL + "/Patient/" + patient.ID; tv.FHIRUser != want || tv.Server != e.Mock.FHIRBaseURL {
		t.Errorf("/api/token fhir_user %q, fhir_base_url %q; want %q and %q", tv.FHIRUser, tv.Server, want, e.Mock.FHIRBaseURL)
	}
	if n := e.Mock.RefreshCalls(); n != 0 {
		t.Fatalf("RefreshCalls before expiry = %d, want 0", n)
	}

	e.Clock.Advance(TokenTTL + time.Second)

	status, body = e.Get("/api/patient")
	if status != http.StatusOK || !strings.Contains(body, `"Patient"`) {
		t.Fatalf("GET /api/patient after expiry: %d %s", status, body)
	}
	if n := e.Mock.RefreshCalls(); n != 1 {
		t.Errorf("RefreshCalls = %d, want 1", n)
	}
	if n := e.Mock.Reuses(); n != 0 {
		t.Errorf("Reuses = %d, want 0", n)
	}
	tv = e.TokenView()
	if tv.Refreshes != 1 {
		t.Errorf("/api/token refreshes = %d, want 1", tv.Refreshes)
	}
	if exp, err := time.Parse(time.RFC3339, tv.ExpiresAt); err != nil || !exp.After(e.Clock.Now()) {
		t.Errorf("/api/token expires_at = %q (%v), want after the clock's %s", tv.ExpiresAt, err, e.Clock.Now())
	}

	status, body = e.Get("/")
	if status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) || !strings.Contains(body, `id="refreshes">1<`) {
		t.Errorf("GET / after the refresh: %d, want the patient page and 1 refresh:\n%s", status, body)
	}
	if status, body := e.Proxy("Patient/123"); status != http.StatusOK || !strings.Contains(body, `"family":"Shaw"`) {
		t.Errorf("GET /fhir/Patient/123 after the refresh: %d %s", status, body)
	}
	if n := e.Mock.RefreshCalls(); n != 1 {
		t.Errorf("RefreshCalls after the home page = %d, want still 1", n)
	}
	e.AssertNoSecret("home page", body)
	e.AssertNoSecret("logs", e.Logs.String())
}

// Concurrent launches, lets the token expire, and then sends a burst of
// concurrent requests of the same session, twice over: each burst refreshes
// the token exactly once, and no refresh token is ever presented again,
// although every request commits its own copy of the session (IdleTimeout)
// and some of them write back a copy older than the rotation.
func Concurrent(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	if status, body := e.Get("/launch"); status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		t.Fatalf("launch: %d:\n%s", status, body)
	}
	paths := []string{"/api/patient", "/api/token", "/", demo.ProxyPrefix + "Patient/123"}
	for round := 1; round <= 2; round++ {
		e.Clock.Advance(TokenTTL + time.Second)
		var wg sync.WaitGroup
		for i := range 12 {
			path := paths[i%len(paths)]
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
				req.Header.Set("X-CSRF", "1") // for the FHIR proxy
				resp, err := e.Client.Do(req)
				if err != nil {
					t.Errorf("round %d: GET %s: %v", round, path, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("round %d: GET %s: %d", round, path, resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if n := e.Mock.RefreshCalls(); n != round {
			t.Errorf("after round %d: RefreshCalls = %d, want %d", round, n, round)
		}
		if n := e.Mock.Reuses(); n != 0 {
			t.Fatalf("after round %d: Reuses = %d, want 0", round, n)
		}
		if v := e.TokenView(); v.Refreshes != round {
			t.Errorf("after round %d: /api/token refreshes = %d", round, v.Refreshes)
		}
	}
	if status, body := e.Get("/api/patient"); status != http.StatusOK {
		t.Errorf("GET /api/patient at the end: %d %s", status, body)
	}
}

// TokenView fetches /api/token.
func (e *Env) TokenView() demo.TokenView {
	e.t.Helper()
	status, body := e.Get("/api/token")
	if status != http.StatusOK {
		e.t.Fatalf("GET /api/token: %d %s", status, body)
	}
	e.AssertNoSecret("/api/token", body)
	var v demo.TokenView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		e.t.Fatalf("GET /api/token: %v: %s", err, body)
	}
	return v
}

// LoggedOut checks that the API answers 401 with a JSON error without a
// session token.
func LoggedOut(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	e.AssertLoggedOut(e.Client)
	if status, body := e.Get("/"); status != http.StatusOK || !strings.Contains(body, `id="embedded-hint"`) {
		t.Errorf("GET / logged out with the embedded server: %d, want the embedded-server hint:\n%s", status, body)
	}
	if n := e.Mock.TokenCalls(); n != 0 {
		t.Errorf("TokenCalls = %d, want 0", n)
	}
}

// AssertLoggedOut checks that the API answers the browser c with a 401
// JSON reauth_required error.
func (e *Env) AssertLoggedOut(c *http.Client) {
	e.t.Helper()
	for _, path := range []string{"/api/patient", "/api/token"} {
		resp, err := c.Get(e.URL + path)
		if err != nil {
			e.t.Fatal(err)
		}
		var body struct {
			Error string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || err != nil || body.Error != "reauth_required" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			e.t.Errorf("GET %s logged out: %d %s error=%q (%v), want 401 JSON reauth_required",
				path, resp.StatusCode, resp.Header.Get("Content-Type"), body.Error, err)
		}
	}
}

// csrfField is the logout form's CSRF token in the home page.
var csrfField = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]+)">`)

// Launch logs in through the mock server and returns the CSRF token of the
// logout form on the logged-in page.
func (e *Env) Launch() string {
	e.t.Helper()
	landing, err := e.Mock.Login(e.Client, e.URL+"/launch")
	if err != nil {
		e.t.Fatal(err)
	}
	status, body := get(e.t, e.Client, landing)
	if status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		e.t.Fatalf("after the launch, %s: %d, want 200 with the patient page:\n%s", landing, status, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, `<form method="post" action="/logout">`) || !strings.Contains(body, "Log out") {
		e.t.Fatalf("the logged-in page has no logout form with a CSRF token:\n%s", body)
	}
	return m[1]
}

// PostLogout posts the logout form, without following a redirect, and
// returns the status, the Location and the body of the answer.
func (e *Env) PostLogout(form url.Values) (status int, location, body string) {
	e.t.Helper()
	c := *e.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(e.URL+"/logout", form)
	if err != nil {
		e.t.Fatalf("POST /logout: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("POST /logout: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// Issued returns the access and refresh tokens the mock server issued last.
func (e *Env) Issued() (access, refresh string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.access, e.refresh
}

// cookies returns the browser's cookies for the app.
func (e *Env) cookies() []*http.Cookie {
	u, err := url.Parse(e.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.Client.Jar.Cookies(u)
}

// Logout logs in, checks that logout forms without the session's CSRF
// token are refused (403, still logged in, nothing revoked), then logs out:
// 303 to the home page, which offers the launch again, a new session
// cookie, the API answering 401, and the grant revoked at the mock server,
// where neither the old refresh token nor the old access token works any
// more. Logging in again works. It runs with each -revoke-style: the mock
// server's RFC 7009 endpoint and its GET /oauth/cancel?token=.
func Logout(t *testing.T, name string, build func(*demo.App) http.Handler) {
	for _, style := range []string{"rfc7009", "get"} {
		t.Run(style, func(t *testing.T) { logout(t, name, build, style) })
	}
}

func logout(t *testing.T, name string, build func(*demo.App) http.Handler, style string) {
	e := Start(t, name, build, "-revoke-style", style)
	var (
		mu       sync.Mutex
		revokeAt []string // method and URL of each revocation request
	)
	e.Mock.SetRevokeHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		revokeAt = append(revokeAt, r.Method+" "+e.Mock.URL+r.URL.Path)
		mu.Unlock()
		next.ServeHTTP(w, r)
	})
	csrf := e.Launch()
	access, refresh := e.Issued()
	if access == "" || refresh == "" {
		t.Fatalf("the mock server issued no access or refresh token")
	}

	for _, form := range []url.Values{{}, {"csrf": {""}}, {"csrf": {"forged"}}, {"csrf": {csrf + "x"}}} {
		status, _, body := e.PostLogout(form)
		if status != http.StatusForbidden || !strings.Contains(body, "invalid_csrf") {
			t.Errorf("POST /logout with %v: %d %s, want 403 invalid_csrf", form, status, body)
		}
	}
	if n := e.Mock.RevokeCalls(); n != 0 {
		t.Errorf("RevokeCalls after refused logouts = %d, want 0", n)
	}
	if status, body := e.Get("/api/patient"); status != http.StatusOK {
		t.Fatalf("GET /api/patient after refused logouts: %d %s, want still logged in", status, body)
	}

	before := e.cookies()
	status, location, body := e.PostLogout(url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther || location != "/" {
		t.Fatalf("POST /logout: %d Location %q, want 303 to /:\n%s", status, location, body)
	}
	after := e.cookies()
	if len(before) != 1 || len(after) != 1 || after[0].Value == before[0].Value {
		t.Errorf("the session cookie was not renewed at logout: %d cookies before, %d after", len(before), len(after))
	}

	status, body = e.Get("/")
	if status != http.StatusOK || !strings.Contains(body, `href="/launch"`) || !strings.Contains(body, "Launch") ||
		strings.Contains(body, `id="patient-name"`) || strings.Contains(body, `action="/logout"`) {
		t.Errorf("GET / after logout: %d, want the logged-out page with Launch:\n%s", status, body)
	}
	e.AssertLoggedOut(e.Client)

	// The session the browser held before the logout is gone too.
	if len(before) == 1 {
		old := browser(t)
		u, _ := url.Parse(e.URL)
		old.Jar.SetCookies(u, before)
		e.AssertLoggedOut(old)
	}

	if n := e.Mock.RevokeCalls(); n < 1 {
		t.Errorf("RevokeCalls = %d, want at least 1", n)
	}
	want := "POST " + e.Mock.RevokeURL
	if style == "get" {
		want = "GET " + e.Mock.CancelURL
	}
	mu.Lock()
	for _, got := range revokeAt {
		if got != want {
			t.Errorf("revocation request %s, want %s", got, want)
		}
	}
	mu.Unlock()
	if n := e.Mock.RevokedGrants(); n != 1 {
		t.Errorf("RevokedGrants = %d, want 1", n)
	}
	e.assertRefreshTokenDead(refresh)
	e.assertAccessTokenDead(access)

	if !strings.Contains(e.Logs.String(), "logged out") {
		t.Errorf("the logs do not record the logout")
	}
	e.AssertNoSecret("logs", e.Logs.String())

	// A new login gets a new CSRF token and works as before.
	if again := e.Launch(); again == csrf {
		t.Errorf("the CSRF token was not renewed at the new login")
	}
	if status, body := e.Get("/api/patient"); status != http.StatusOK {
		t.Errorf("GET /api/patient after logging in again: %d %s", status, body)
	}
}

// LogoutRevocationFails checks that a user is logged out even when the
// revocation endpoint fails, and that the failure is logged without a
// token.
func LogoutRevocationFails(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	csrf := e.Launch()
	e.Mock.SetRevokeHook(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"temporarily_unavailable"}`)
	})
	status, location, body := e.PostLogout(url.Values{"csrf": {csrf}})
	if status != http.StatusSeeOther || location != "/" {
		t.Fatalf("POST /logout with the revocation endpoint down: %d Location %q, want 303 to /:\n%s",
			status, location, body)
	}
	if n := e.Mock.RevokeCalls(); n < 1 {
		t.Errorf("RevokeCalls = %d, want at least 1", n)
	}
	if status, body := e.Get("/"); status != http.StatusOK || !strings.Contains(body, `href="/launch"`) {
		t.Errorf("GET / after logout: %d, want the logged-out page:\n%s", status, body)
	}
	e.AssertLoggedOut(e.Client)
	if !strings.Contains(e.Logs.String(), "logged out, but") {
		t.Errorf("the failed revocation is not logged")
	}
	e.AssertNoSecret("logs", e.Logs.String())
}

// assertRefreshTokenDead checks that the mock server answers invalid_grant
// to a refresh with refresh.
func (e *Env) assertRefreshTokenDead(refresh string) {
	e.t.Helper()
	opts := e.Mock.Options()
	resp, err := e.Mock.Client().PostForm(e.Mock.TokenURL, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {opts.ClientID}, "client_secret": {opts.ClientSecret},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Error string `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	if resp.StatusCode != http.StatusBadRequest || err != nil || answer.Error != "invalid_grant" {
		e.t.Errorf("refresh with the old refresh token: %d error=%q (%v), want 400 invalid_grant",
			resp.StatusCode, answer.Error, err)
	}
}

// assertAccessTokenDead checks that the mock FHIR server refuses access.
func (e *Env) assertAccessTokenDead(access string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.Mock.FHIRBaseURL+"/Patient/"+e.Mock.Options().Patient, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := e.Mock.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		e.t.Errorf("FHIR read with the old access token: %d, want 401", resp.StatusCode)
	}
}

// successfulRefreshes matches the Prometheus exporter's line for the
// counter smartrefresh.refreshes with outcome success, at 1.
var successfulRefreshes = regexp.MustCompile(`(?m)^smartrefresh_refreshes_total\{[^}]*outcome="success"[^}]*\} 1$`)

// Metrics checks that without -metrics there is no /metrics, and that with
// it a refresh shows in /metrics as the Prometheus exporter names it,
// without any token.
func Metrics(t *testing.T, name string, build func(*demo.App) http.Handler) {
	off := Start(t, name, build)
	if status, body := off.Get("/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics without -metrics: %d, want 404:\n%s", status, body)
	}

	e := Start(t, name, build, "-metrics")
	e.Launch()
	e.Clock.Advance(TokenTTL + time.Second)
	if status, body := e.Get("/api/patient"); status != http.StatusOK {
		t.Fatalf("GET /api/patient after expiry: %d %s", status, body)
	}
	if n := e.Mock.RefreshCalls(); n != 1 {
		t.Fatalf("RefreshCalls = %d, want 1", n)
	}
	status, body := e.Get("/metrics")
	if status != http.StatusOK || !successfulRefreshes.MatchString(body) {
		t.Errorf("GET /metrics: %d, want 200 with %s:\n%s", status, successfulRefreshes, body)
	}
	if !strings.Contains(body, "smartrefresh_refresh_duration_seconds_count{") {
		t.Errorf("GET /metrics lacks the refresh duration histogram:\n%s", body)
	}
	e.AssertNoSecret("/metrics", body)
}

// BadState checks that a callback whose state does not match the session
// is refused without a token call.
//
// Without a session cookie at all (an EHR that frames the app while the
// cookie is SameSite=Lax) the answer says so.
func BadState(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	status, body := e.Get("/callback?code=x&state=forged")
	if status != http.StatusBadRequest || !strings.Contains(body, "session_missing") || !strings.Contains(body, "SameSite") {
		t.Errorf("GET /callback without a session: %d %s, want 400 session_missing naming SameSite", status, body)
	}
	c := *e.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	status, _ = get(t, &c, e.URL+"/launch") // a launch under way: the session exists
	if status != http.StatusFound {
		t.Fatalf("GET /launch: %d, want 302", status)
	}
	status, body = e.Get("/callback?code=x&state=forged")
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_state") {
		t.Errorf("GET /callback with a forged state: %d %s, want 400 invalid_state", status, body)
	}
	if n := e.Mock.TokenCalls(); n != 0 {
		t.Errorf("TokenCalls = %d, want 0", n)
	}
}

// EHRLaunch launches as an EHR does (GET /launch?iss=…&launch=…): the
// mock server's FHIR base is allowed and completes; another iss is
// answered 400 and redirected nowhere.
func EHRLaunch(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	c := *e.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.URL + "/launch?iss=" + url.QueryEscape("https://evil.example/fhir") + "&launch=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("EHR launch from an unknown iss: %d Location %q, want 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	landing, err := e.Mock.Login(e.Client, e.URL+"/launch?iss="+url.QueryEscape(e.Mock.FHIRBaseURL)+"&launch=abc")
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, e.Client, landing); status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		t.Errorf("after the EHR launch: %d:\n%s", status, body)
	}
}

// NoLaunchPatient logs in at a server whose token answers carry no
// patient: /api/patient falls back to a Patient search, with the token.
func NoLaunchPatient(t *testing.T, name string, build func(*demo.App) http.Handler) {
	e := Start(t, name, build)
	e.StripFromTokenAnswers("patient", "fhirContext")
	if _, err := e.Mock.Login(e.Client, e.URL+"/launch"); err != nil {
		t.Fatal(err)
	}
	if tv := e.TokenView(); tv.Patient != "" {
		t.Fatalf("the token has the launch patient %q; the test needs none", tv.Patient)
	}
	calls := e.Mock.FHIRCalls()
	status, body := e.Get("/api/patient")
	if status != http.StatusOK || !strings.Contains(body, `"resourceType":"Patient"`) {
		t.Errorf("GET /api/patient without a launch patient: %d %s, want a Patient found by search", status, body)
	}
	if n := e.Mock.FHIRCalls() - calls; n != 1 {
		t.Errorf("FHIR calls for /api/patient = %d, want 1 (the search)", n)
	}
	if status, body := e.Get("/"); status != http.StatusOK || !strings.Contains(body, `id="patient-name" data-patient=""`) {
		t.Errorf("home page without a launch patient: %d, want the page that searches for a patient:\n%s", status, body)
	}
}

// AuthMethods logs in and refreshes with each client authentication
// method the demo offers (-auth-method), against the embedded server.
func AuthMethods(t *testing.T, name string, build func(*demo.App) http.Handler) {
	for _, method := range []string{"basic", "none", "private_key_jwt"} {
		t.Run(method, func(t *testing.T) {
			e := Start(t, name, build, "-auth-method", method)
			e.Launch()
			e.Clock.Advance(TokenTTL + time.Second)
			if status, body := e.Get("/api/patient"); status != http.StatusOK {
				t.Fatalf("GET /api/patient after expiry: %d %s", status, body)
			}
			if e.Mock.RefreshCalls() != 1 || e.Mock.Reuses() != 0 {
				t.Errorf("RefreshCalls = %d, Reuses = %d; want 1, 0", e.Mock.RefreshCalls(), e.Mock.Reuses())
			}
			if got := e.Mock.Options().AuthMethod; string(got) != map[string]string{
				"basic": "client_secret_basic", "none": "none", "private_key_jwt": "private_key_jwt"}[method] {
				t.Errorf("the mock server accepts %s", got)
			}
		})
	}
}

// RunFunc is an example's run function.
type RunFunc func(ctx context.Context, args []string, stdout io.Writer) error

// Run starts run on 127.0.0.1:0 with the embedded server, launches through
// it, and checks that it stops when ctx is cancelled. It also checks that
// an incomplete real-server configuration is refused.
func Run(t *testing.T, run RunFunc) {
	t.Setenv(demo.SecretEnv, "")

	err := run(t.Context(), []string{"-token-url", "https://smart.example/token"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-fhir-base") {
		t.Errorf("run with only -token-url: %v, want an error naming -fhir-base", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-token-ttl", "1m", "-metrics"}, out) }()

	appURL := out.WaitFor(t, done, regexp.MustCompile(`listening on (http://\S+)`), 10*time.Second)
	if !strings.Contains(out.String(), "embedded mock SMART server") {
		t.Errorf("output does not mention the embedded server:\n%s", out)
	}
	status, body := get(t, browser(t), appURL+"/")
	if status != http.StatusOK || !strings.Contains(body, `id="embedded-hint"`) {
		t.Errorf("GET / through run: %d, want the embedded-server hint:\n%s", status, body)
	}
	status, body = get(t, browser(t), appURL+"/launch")
	if status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		t.Errorf("launch through run: %d, want 200 with the patient page:\n%s", status, body)
	}
	if !strings.Contains(out.String(), "Prometheus metrics at "+appURL+"/metrics\n") {
		t.Errorf("output does not give the /metrics URL:\n%s", out)
	}
	if status, body := get(t, http.DefaultClient, appURL+"/metrics"); status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics through run: %d, want 200 with the Go runtime metrics:\n%s", status, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s of the context's cancellation")
	}
	if resp, err := http.Get(appURL); err == nil {
		resp.Body.Close()
		t.Errorf("the app still answers after run returned")
	}
}

// Buffer is a bytes.Buffer safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits until re matches the buffer and returns its first group.
// It fails if done delivers first or the timeout passes.
func (b *Buffer) WaitFor(t *testing.T, done <-chan error, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, b)
		case <-deadline:
			t.Fatalf("no match for %s within %s:\n%s", re, timeout, b)
		case <-tick.C:
		}
	}
}
