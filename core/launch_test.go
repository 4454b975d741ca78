package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// launchApp is an app as a user writes it: a real scs session manager, a
// Refresher and a Launcher against a strict mock server, served over real
// HTTP. /me answers the session's Info as JSON.
type launchApp struct {
	t      testing.TB
	clock  *smarttest.Clock
	srv    *smarttest.Server
	sm     *scs.SessionManager
	r      *core.Refresher
	l      *core.Launcher
	url    string
	logs   *bytes.Buffer
	config map[string]any // the SMART configuration served, when overridden
}

type launchOptions struct {
	server    smarttest.Options
	refresher func(*core.Config)
	launch    func(*core.LaunchConfig)
	// config edits the SMART configuration the mock server publishes.
	config func(map[string]any)
	// wrap wraps the mock server's handler.
	wrap func(http.Handler) http.Handler
	// revoke sets the Refresher's RevocationURL to the mock server's.
	revoke bool
}

func newLaunchApp(t testing.TB, o launchOptions) *launchApp {
	t.Helper()
	a := &launchApp{t: t, clock: newClock(), logs: &bytes.Buffer{}}
	o.server.Now = a.clock.Now
	app := httptest.NewUnstartedServer(nil)
	a.url = "http://" + app.Listener.Addr().String()
	if o.server.RedirectURIs == nil {
		o.server.RedirectURIs = []string{a.url + "/callback"} // as the app registered it
	}
	mock := httptest.NewUnstartedServer(nil)
	a.srv = smarttest.New("http://"+mock.Listener.Addr().String(), o.server)
	h := a.srv.Handler()
	if o.config != nil {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/fhir/.well-known/smart-configuration", nil))
		if err := json.Unmarshal(rec.Body.Bytes(), &a.config); err != nil {
			t.Fatal(err)
		}
		o.config(a.config)
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/.well-known/smart-configuration") {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(a.config)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	if o.wrap != nil {
		h = o.wrap(h)
	}
	mock.Config.Handler = h
	mock.Start()
	t.Cleanup(mock.Close)

	a.sm = scs.New()
	a.sm.IdleTimeout = 30 * time.Minute
	so := a.srv.Options()
	cfg := core.Config{
		TokenURL: a.srv.TokenURL, ClientID: so.ClientID, ClientSecret: so.ClientSecret,
		AuthMethod: so.AuthMethod, Sessions: a.sm, Now: a.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: a.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.revoke {
		cfg.RevocationURL = a.srv.RevokeURL
	}
	if o.refresher != nil {
		o.refresher(&cfg)
	}
	r, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.r = r
	lcfg := core.LaunchConfig{
		RedirectURL: a.url + "/callback",
		Scope:       "launch/patient patient/*.read openid fhirUser offline_access",
		FHIRBaseURL: a.srv.FHIRBaseURL,
	}
	if o.launch != nil {
		o.launch(&lcfg)
	}
	if a.l, err = core.NewLauncher(r, lcfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /launch", a.l.LaunchHandler())
	mux.Handle("GET /callback", a.l.CallbackHandler())
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(core.LaunchContext(req))
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		json.NewEncoder(w).Encode(info)
	})
	// /read reads the launch's patient at the FHIR server with the
	// launch's token, refreshed when due, and answers the FHIR status.
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, req *http.Request) {
		ctx := core.LaunchContext(req)
		tok, err := r.Token(ctx)
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		resp, err := r.Client(ctx).Get(a.srv.FHIRBaseURL + "/Patient/" + tok.Patient)
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, tok.Patient)
	})
	proxy, err := r.FHIRProxy(core.ProxyConfig{Upstream: a.srv.FHIRBaseURL, Prefix: "/fhir/"})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/fhir/", proxy)
	mux.HandleFunc("POST /save", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Save(req.Context(), a.srv.Grant()); err != nil {
			core.WriteError(w, req, err)
		}
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Logout(req.Context()); err != nil {
			core.WriteError(w, req, err)
		}
	})
	mux.HandleFunc("POST /logout-launch", func(w http.ResponseWriter, req *http.Request) {
		if err := r.LogoutLaunch(core.LaunchContext(req)); err != nil {
			core.WriteError(w, req, err)
		}
	})
	app.Config.Handler = a.sm.LoadAndSave(mux)
	app.Start()
	t.Cleanup(app.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", a.logs)
		}
	})
	return a
}

// answer is one HTTP answer, read in full.
type answer struct {
	status   int
	location string
	ctype    string
	body     string
}

// browser is a cookie-keeping client that does not follow redirects, so
// that each step of a launch can be checked.
type browser struct {
	t testing.TB
	c *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	return &browser{t: t, c: c}
}

func (b *browser) get(u string, header ...string) answer {
	b.t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), string(body)}
}

// launch asks the app for /launch with query and returns the authorization
// request it redirects to.
func (a *launchApp) launch(b *browser, query string) *url.URL {
	a.t.Helper()
	res := b.get(a.url + "/launch" + query)
	if res.status != http.StatusFound {
		a.t.Fatalf("GET /launch%s: %d %s, want 302", query, res.status, res.body)
	}
	u, err := url.Parse(res.location)
	if err != nil || !strings.HasPrefix(res.location, a.srv.AuthorizeURL+"?") {
		a.t.Fatalf("GET /launch%s redirects to %q, want the authorization endpoint", query, res.location)
	}
	return u
}

// authorize has the mock server approve the request and returns the
// callback URL it redirects to.
func (a *launchApp) authorize(b *browser, authz *url.URL) string {
	a.t.Helper()
	res := b.get(authz.String())
	if res.status != http.StatusFound || !strings.HasPrefix(res.location, a.url+"/callback?") {
		a.t.Fatalf("authorize: %d %q %s", res.status, res.location, res.body)
	}
	return res.location
}

// login runs a whole launch and returns the callback's answer.
func (a *launchApp) login(b *browser, query string) answer {
	a.t.Helper()
	return b.get(a.authorize(b, a.launch(b, query)))
}

// me returns the session's Info, or fails.
func (a *launchApp) me(b *browser) core.SessionInfo {
	a.t.Helper()
	res := b.get(a.url + "/me")
	if res.status != http.StatusOK {
		a.t.Fatalf("GET /me: %d %s", res.status, res.body)
	}
	var info core.SessionInfo
	if err := json.Unmarshal([]byte(res.body), &info); err != nil {
		a.t.Fatal(err)
	}
	return info
}

func (a *launchApp) loggedOut(b *browser) {
	a.t.Helper()
	if res := b.get(a.url + "/me"); res.status != http.StatusUnauthorized {
		a.t.Errorf("GET /me: %d %s, want 401 (no token saved)", res.status, res.body)
	}
}

func TestLaunchStandalone(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	authz := a.launch(b, "")
	q := authz.Query()
	for k, want := range map[string]string{
		"response_type": "code", "client_id": "smart-client", "redirect_uri": a.url + "/callback",
		"scope": "launch/patient patient/*.read openid fhirUser offline_access", "aud": a.srv.FHIRBaseURL,
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("authorize %s = %q, want %q", k, got, want)
		}
	}
	// rand.Text: 26 base32 characters, 130 bits.
	if s := q.Get("state"); len(s) < 26 {
		t.Errorf("state %q has fewer than 128 bits", s)
	}
	if len(q.Get("code_challenge")) != 43 || q.Has("launch") || q.Get("nonce") == "" {
		t.Errorf("authorize query %v: want a S256 challenge, a nonce (openid) and no launch", q)
	}
	res := b.get(a.authorize(b, authz))
	if res.status != http.StatusSeeOther || landing(t, res.location) != "/" {
		t.Fatalf("callback: %d %q %s, want 303 to /", res.status, res.location, res.body)
	}
	info := a.me(b)
	if info.Patient != "123" || !info.HasRefreshToken || info.FHIRBaseURL != a.srv.FHIRBaseURL {
		t.Errorf("Info after the launch = %+v", info)
	}
	if n := a.srv.TokenCalls(); n != 1 {
		t.Errorf("TokenCalls = %d, want 1", n)
	}
}

func TestLaunchEHR(t *testing.T) {
	other := "https://other-ehr.example/fhir"
	a := newLaunchApp(t, launchOptions{launch: func(c *core.LaunchConfig) {
		c.Issuers = []string{c.FHIRBaseURL}
	}})
	b := newBrowser(t)
	authz := a.launch(b, "?iss="+url.QueryEscape(a.srv.FHIRBaseURL)+"&launch=xyz123")
	if q := authz.Query(); q.Get("launch") != "xyz123" || q.Get("aud") != a.srv.FHIRBaseURL {
		t.Errorf("EHR launch authorize query = %v, want launch=xyz123 and aud=iss", q)
	}
	if res := b.get(a.authorize(b, authz)); res.status != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", res.status, res.body)
	}
	for _, query := range []string{
		"?iss=" + url.QueryEscape(other) + "&launch=1",
		"?iss=" + url.QueryEscape(a.srv.FHIRBaseURL+"/") + "&launch=1", // not exactly the same
		"?iss=" + url.QueryEscape(strings.ToUpper(a.srv.FHIRBaseURL)) + "&launch=1",
		"?launch=1",
		"?iss=" + url.QueryEscape(a.srv.FHIRBaseURL) + "&iss=" + url.QueryEscape(other) + "&launch=1",
	} {
		res := b.get(a.url+"/launch"+query, "Accept", "application/json")
		if res.status != http.StatusBadRequest || res.location != "" || !strings.Contains(res.ctype, "json") {
			t.Errorf("GET /launch%s: %d Location %q, want 400 JSON and no redirect", query, res.status, res.location)
		}
	}
	res := b.get(a.url + "/launch?iss=" + url.QueryEscape(other) + "&launch=1")
	if !strings.Contains(res.body, "invalid_issuer") || !strings.Contains(res.ctype, "text/html") {
		t.Errorf("refused iss page: %s %s", res.ctype, res.body)
	}
}

func TestLaunchTwoTabs(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	tab1 := a.launch(b, "?return_to=/one")
	tab2 := a.launch(b, "?return_to=/two")
	if res := b.get(a.authorize(b, tab2)); res.status != http.StatusSeeOther || landing(t, res.location) != "/two" {
		t.Fatalf("tab 2: %d %q %s", res.status, res.location, res.body)
	}
	if res := b.get(a.authorize(b, tab1)); res.status != http.StatusSeeOther || landing(t, res.location) != "/one" {
		t.Fatalf("tab 1 after tab 2 completed: %d %q %s", res.status, res.location, res.body)
	}
	if n := a.srv.TokenCalls(); n != 2 {
		t.Errorf("TokenCalls = %d, want 2", n)
	}
}

// TestLaunchConcurrentTabs starts many launches of one session at once
// (each request commits its own copy of the session); every one of them
// then completes.
func TestLaunchConcurrentTabs(t *testing.T) {
	const tabs = 8
	a := newLaunchApp(t, launchOptions{launch: func(c *core.LaunchConfig) { c.MaxPendingLaunches = tabs }})
	b := newBrowser(t)
	a.launch(b, "") // the session exists before the tabs start
	authz := make([]*url.URL, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Go(func() { authz[i] = a.launch(b, "") })
	}
	wg.Wait()
	for i, u := range authz {
		if res := b.get(a.authorize(b, u)); res.status != http.StatusSeeOther {
			t.Errorf("tab %d: %d %s", i, res.status, res.body)
		}
	}
}

func TestCallbackStateErrors(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	cb := a.authorize(b, a.launch(b, ""))
	if res := b.get(cb); res.status != http.StatusSeeOther {
		t.Fatalf("first callback: %d %s", res.status, res.body)
	}
	res := b.get(cb, "Accept", "application/json")
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, `"state_used"`) {
		t.Errorf("replayed callback: %d %s, want 400 state_used", res.status, res.body)
	}
	res = b.get(a.url+"/callback?code=abc&state=unknown", "Accept", "application/json")
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, `"invalid_state"`) {
		t.Errorf("unknown state: %d %s, want 400 invalid_state", res.status, res.body)
	}
	if res := b.get(a.url + "/callback?code=abc"); res.status != http.StatusBadRequest {
		t.Errorf("no state: %d", res.status)
	}
	if n := a.srv.TokenCalls(); n != 1 {
		t.Errorf("TokenCalls = %d, want 1: a code went out twice or an unknown state was exchanged", n)
	}
	if n := a.srv.RevokedGrants(); n != 0 {
		t.Errorf("RevokedGrants = %d: the code was reused", n)
	}

	// Expired: the launch took longer than StateTTL.
	cb = a.authorize(b, a.launch(b, ""))
	a.clock.Advance(core.DefaultLaunchStateTTL + time.Second)
	res = b.get(cb, "Accept", "application/json")
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, `"state_expired"`) {
		t.Errorf("expired state: %d %s", res.status, res.body)
	}
	if n := a.srv.TokenCalls(); n != 1 {
		t.Errorf("TokenCalls = %d after an expired state, want 1", n)
	}
}

// TestCallbackLoadedTwiceAtOnce: the same callback URL loaded many times at
// the same moment (a double click, browser retries) sends its code once.
func TestCallbackLoadedTwiceAtOnce(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	cb := a.authorize(b, a.launch(b, ""))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses []int
	)
	for range 200 {
		wg.Go(func() {
			res := b.get(cb)
			mu.Lock()
			statuses = append(statuses, res.status)
			mu.Unlock()
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusSeeOther {
			ok++
		}
	}
	if ok != 1 || a.srv.TokenCalls() != 1 || a.srv.RevokedGrants() != 0 {
		t.Errorf("200 loads of one callback: %d logins, %d token calls, %d revoked grants; want 1, 1, 0 (statuses %v)",
			ok, a.srv.TokenCalls(), a.srv.RevokedGrants(), statuses)
	}
}

func TestCallbackAuthorizationRefused(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	state := a.launch(b, "").Query().Get("state")
	cb := a.url + "/callback?error=access_denied&error_description=" + url.QueryEscape("<b>the user said no</b>") + "&state=" + state
	res := b.get(cb, "Accept", "text/html")
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "access_denied") ||
		!strings.Contains(res.body, "&lt;b&gt;the user said no") || strings.Contains(res.body, "<b>the user") {
		t.Errorf("access_denied page: %d %s", res.status, res.body)
	}
	state = a.launch(b, "").Query().Get("state")
	res = b.get(a.url+"/callback?error=temporarily_unavailable&state="+state, "Accept", "application/json")
	var body struct{ Error, ErrorDescription string }
	json.Unmarshal([]byte(res.body), &body)
	if res.status != http.StatusServiceUnavailable || !strings.Contains(res.body, `"error":"temporarily_unavailable"`) {
		t.Errorf("temporarily_unavailable: %d %s", res.status, res.body)
	}
	if n := a.srv.TokenCalls(); n != 0 {
		t.Errorf("TokenCalls = %d, want 0", n)
	}
	a.loggedOut(b)
}

// TestCallbackWithoutSession is the iframe case: the callback comes
// without the session cookie of the launch.
func TestCallbackWithoutSession(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	cb := a.authorize(b, a.launch(b, ""))
	res := newBrowser(t).get(cb, "Accept", "text/html")
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "session_missing") ||
		!strings.Contains(res.body, "iframe") || !strings.Contains(res.body, "SameSite=None; Secure") {
		t.Errorf("callback without the session cookie: %d %s", res.status, res.body)
	}
	if n := a.srv.TokenCalls(); n != 0 {
		t.Errorf("TokenCalls = %d, want 0", n)
	}
	// The launch is still pending in its own session.
	if res := b.get(cb); res.status != http.StatusSeeOther {
		t.Errorf("the callback in the launching browser: %d %s", res.status, res.body)
	}
}

func TestCallbackExchangeAuthMethods(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server smarttest.Options
		edit   func(*core.Config)
	}{
		{"client_secret_post", smarttest.Options{AuthMethod: core.ClientSecretPost}, nil},
		{"client_secret_basic", smarttest.Options{AuthMethod: core.ClientSecretBasic}, nil},
		{"none", smarttest.Options{AuthMethod: core.None}, func(c *core.Config) { c.ClientSecret = "" }},
		{"private_key_jwt", smarttest.Options{AuthMethod: core.PrivateKeyJWT, ClientPublicKey: rsaKey().Public(), ClientKeyID: "k1"},
			func(c *core.Config) { c.ClientSecret, c.PrivateKey, c.KeyID = "", rsaKey(), "k1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newLaunchApp(t, launchOptions{server: tc.server, refresher: tc.edit})
			b := newBrowser(t)
			if res := a.login(b, ""); res.status != http.StatusSeeOther {
				t.Fatalf("callback: %d %s", res.status, res.body)
			}
			if info := a.me(b); info.Patient != "123" {
				t.Errorf("Info = %+v", info)
			}
			if n := a.srv.TokenCalls(); n != 1 {
				t.Errorf("TokenCalls = %d, want 1", n)
			}
		})
	}
}

// TestCallbackExchangeRefused: a code the server rejects (here because the
// client authentication is wrong) is sent once and reported.
func TestCallbackExchangeRefused(t *testing.T) {
	a := newLaunchApp(t, launchOptions{refresher: func(c *core.Config) { c.ClientSecret = "wrong-secret" }})
	b := newBrowser(t)
	res := b.get(a.authorize(b, a.launch(b, "")), "Accept", "application/json")
	if res.status != http.StatusInternalServerError || strings.Contains(res.body, "wrong-secret") {
		t.Errorf("callback with a wrong secret: %d %s", res.status, res.body)
	}
	if n := a.srv.TokenCalls(); n != 1 {
		t.Errorf("TokenCalls = %d, want 1", n)
	}
	if strings.Contains(a.logs.String(), "wrong-secret") {
		t.Error("the client secret is in the logs")
	}
	a.loggedOut(b)
}

func TestLaunchReturnTo(t *testing.T) {
	a := newLaunchApp(t, launchOptions{})
	b := newBrowser(t)
	if res := a.login(b, "?return_to="+url.QueryEscape("/patients/123?tab=labs")); res.status != http.StatusSeeOther ||
		landing(t, res.location) != "/patients/123?tab=labs" {
		t.Errorf("return_to: %d %q", res.status, res.location)
	}
	for _, bad := range []string{
		"//evil.example", "https://evil.example", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
		"/%2F%2Fevil.example", "%2F%2Fevil.example", "javascript:alert(1)", "evil.example", "/\tevil", "// evil.example",
		"http:evil.example", "/%5Cevil.example",
	} {
		res := b.get(a.url+"/launch?return_to="+url.QueryEscape(bad), "Accept", "application/json")
		if res.status != http.StatusBadRequest || res.location != "" || !strings.Contains(res.body, "invalid_return_to") {
			t.Errorf("return_to=%q: %d Location %q %s, want 400 invalid_return_to", bad, res.status, res.location, res.body)
		}
	}
}

func TestLaunchDiscoveryChecks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(map[string]any)
		allow  bool
		want   string
	}{
		{"no S256", func(c map[string]any) { c["code_challenge_methods_supported"] = []string{"plain"} }, false, "S256"},
		{"no list", func(c map[string]any) { delete(c, "code_challenge_methods_supported") }, false, "S256"},
		{"no list, allowed", func(c map[string]any) { delete(c, "code_challenge_methods_supported") }, true, ""},
		{"other token endpoint", func(c map[string]any) { c["token_endpoint"] = "https://elsewhere.example/token" }, false, "TokenURL"},
		{"no authorization endpoint", func(c map[string]any) { delete(c, "authorization_endpoint") }, false, "authorization_endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newLaunchApp(t, launchOptions{config: tc.config, launch: func(c *core.LaunchConfig) { c.AllowWithoutS256 = tc.allow }})
			b := newBrowser(t)
			res := b.get(a.url+"/launch", "Accept", "application/json")
			if tc.want == "" {
				if res.status != http.StatusFound {
					t.Errorf("launch: %d %s, want 302", res.status, res.body)
				}
				return
			}
			if res.status != http.StatusInternalServerError || res.location != "" || !strings.Contains(res.body, tc.want) {
				t.Errorf("launch: %d %q %s, want 500 naming %s", res.status, res.location, res.body, tc.want)
			}
		})
	}
}

func TestNewLauncherConfigErrors(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.FHIRBaseURLs = []string{"https://ehr.example/fhir"} })
	good := core.LaunchConfig{RedirectURL: "https://app.example/callback", Scope: "openid", FHIRBaseURL: "https://ehr.example/fhir"}
	if _, err := core.NewLauncher(f.r, good); err != nil {
		t.Fatal(err)
	}
	for field, edit := range map[string]func(*core.LaunchConfig){
		"RedirectURL":        func(c *core.LaunchConfig) { c.RedirectURL = "" },
		"Scope":              func(c *core.LaunchConfig) { c.Scope = " " },
		"FHIRBaseURL":        func(c *core.LaunchConfig) { c.FHIRBaseURL = "http://ehr.example/fhir" },
		"Issuers":            func(c *core.LaunchConfig) { c.Issuers = []string{"https://other.example/fhir"} },
		"AuthorizeURL":       func(c *core.LaunchConfig) { c.AuthorizeURL = "ftp://x" },
		"AfterLogin":         func(c *core.LaunchConfig) { c.AfterLogin = "//evil.example" },
		"StateTTL":           func(c *core.LaunchConfig) { c.StateTTL = -1 },
		"MaxPendingLaunches": func(c *core.LaunchConfig) { c.MaxPendingLaunches = -1 },
	} {
		cfg := good
		edit(&cfg)
		_, err := core.NewLauncher(f.r, cfg)
		var ce *core.LaunchConfigError
		if !errors.As(err, &ce) || ce.Field != field || !errors.Is(err, core.ErrMisconfigured) {
			t.Errorf("%s: NewLauncher = %v, want a LaunchConfigError on %s", field, err, field)
		}
	}
}

func TestSafeReturnTo(t *testing.T) {
	for s, want := range map[string]bool{
		"/": true, "/a/b?c=d#e": true, "/patients/123": true,
		"": false, "//evil.example": false, "https://evil.example": false, "/\\evil.example": false,
		"/%2f%2fevil.example": false, "relative": false, "/a b": false, "/a\nb": false,
		"/" + strings.Repeat("a", 3000): false,
		// Decoded by a proxy before a browser, which drops tabs and
		// newlines: //evil.example.
		"/%09/evil.example": false, "/%0a/evil.example": false, "/%0D/evil.example": false,
		"/search?q=%09": true,
		// Issue 19 item 14: no whitespace or control character once
		// decoded, whatever its kind.
		"/a%20b": false, "/%20/evil.example": false, "/%c2%a0/evil.example": false,
		"/%e2%80%a8/x": false, "/%e2%80%8b/x": false, "/%7f/x": false, "/caf%c3%a9": true,
	} {
		if got := core.SafeReturnTo(s); got != want {
			t.Errorf("SafeReturnTo(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzSafeReturnTo checks that a return_to SafeReturnTo accepts stays on
// the app's origin however a browser resolves it, backslashes read as
// slashes included.
func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range []string{"/", "/a?b#c", "//evil", "/\\evil", "https://evil", "/%2F%2Fevil", "/.//evil", "/\t/evil", "/%09/evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://app.example/launch")
	f.Fuzz(func(t *testing.T, s string) {
		if !core.SafeReturnTo(s) {
			return
		}
		if u, err := url.Parse(s); err == nil {
			if strings.ContainsFunc(u.Path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
				t.Fatalf("accepted %q, whose decoded path has whitespace or a control character", s)
			}
			// Its path decoded by a proxy, then read by a browser, which
			// drops tabs and newlines.
			v := strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(u.Path)
			if d, err := url.Parse(v); err == nil {
				if r := base.ResolveReference(d); r.Host != "app.example" {
					t.Fatalf("accepted %q, which leads to %s once decoded", s, r)
				}
			}
		}
		for _, v := range []string{s, strings.ReplaceAll(s, "\\", "/")} {
			u, err := url.Parse(v)
			if err != nil {
				t.Fatalf("accepted %q, which does not parse", s)
			}
			if r := base.ResolveReference(u); r.Host != "app.example" || r.Scheme != "https" {
				t.Fatalf("accepted %q, which leads to %s", s, r)
			}
		}
	})
}

// FuzzCallbackQuery sends arbitrary callback queries to a session with a
// launch under way: the callback never panics, never redirects anywhere
// but into the app, and exchanges a code only for the launch's own state.
func FuzzCallbackQuery(f *testing.F) {
	for _, s := range []string{"", "state=x&code=y", "error=access_denied&state=x", "state=%zz", "state=a&state=b",
		"code=" + strings.Repeat("a", 5000), "state=STATE&code=c", "state=STATE&error=server_error&error_description=%3Cb%3E"} {
		f.Add(s)
	}
	a := newLaunchApp(f, launchOptions{})
	f.Fuzz(func(t *testing.T, query string) {
		b := newBrowser(t)
		launch := b.get(a.url + "/launch")
		authz, err := url.Parse(launch.location)
		if launch.status != http.StatusFound || err != nil {
			t.Fatalf("launch: %d %q", launch.status, launch.location)
		}
		state := authz.Query().Get("state")
		query = strings.ReplaceAll(query, "STATE", state)
		if _, err := url.Parse(a.url + "/callback?" + query); err != nil {
			return // no browser sends it
		}
		before := a.srv.TokenCalls()
		res := b.get(a.url+"/callback?"+query, "Accept", "application/json")
		switch {
		case res.status == http.StatusSeeOther:
			if landing(t, res.location) != "/" {
				t.Fatalf("callback?%s redirected to %q", query, res.location)
			}
		case res.status >= 300 && res.status < 400:
			t.Fatalf("callback?%s: %d to %q", query, res.status, res.location)
		}
		if n := a.srv.TokenCalls() - before; n > 1 || n == 1 && !strings.Contains(query, state) {
			t.Fatalf("callback?%s made %d token calls", query, n)
		}
	})
}
