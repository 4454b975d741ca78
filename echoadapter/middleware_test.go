package echoadapter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/echoadapter"
)

// clock is a settable clock shared by the mock server and the Refresher.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a mock SMART server and an app served by it through scs and
// the middleware, driven over HTTP by a client with a cookie jar.
type fixture struct {
	t      *testing.T
	clock  *clock
	srv    *smarttest.Server
	sm     *scs.SessionManager
	r      *core.Refresher
	app    *httptest.Server
	client *http.Client
}

func newFixture(t *testing.T, opts ...echoadapter.Option) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}, sm: scs.New()}
	f.srv = smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour, Now: f.clock.Now})
	t.Cleanup(f.srv.Close)
	f.r = f.newRefresher()
	f.app = httptest.NewServer(f.sm.LoadAndSave(f.routes(f.r, opts...)))
	t.Cleanup(f.app.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.client = &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

func (f *fixture) newRefresher() *core.Refresher {
	f.t.Helper()
	r, err := core.New(core.Config{
		TokenURL: f.srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: f.sm, Now: f.clock.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// routes is the app: /login saves a fresh grant (as a callback would),
// /api/me answers the attached access token, /api/patient reads the patient
// from the FHIR server through r.Client, /api/public reports whether a
// token is attached.
func (f *fixture) routes(r *core.Refresher, opts ...echoadapter.Option) http.Handler {
	e := echo.New()
	e.GET("/login", func(c echo.Context) error {
		if err := r.Save(c.Request().Context(), f.srv.Grant()); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	api := e.Group("/api", echoadapter.Middleware(r, opts...))
	api.GET("/me", func(c echo.Context) error {
		tok, ok := echoadapter.Token(c)
		if !ok {
			return c.String(http.StatusInternalServerError, "no token")
		}
		return c.String(http.StatusOK, tok.AccessToken)
	})
	api.GET("/patient", func(c echo.Context) error {
		resp, err := r.Client(c.Request().Context()).Get(f.srv.FHIRBaseURL + "/Patient/123")
		if err != nil {
			return c.String(http.StatusBadGateway, err.Error())
		}
		defer resp.Body.Close()
		return c.Stream(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Body)
	})
	api.GET("/public", func(c echo.Context) error {
		_, ok := echoadapter.Token(c)
		return c.String(http.StatusOK, map[bool]string{true: "token", false: "no token"}[ok])
	})
	return e
}

// get requests base+path and returns the status, the Retry-After header and
// the body.
func (f *fixture) get(base, path string) (int, string, string) {
	resp, err := f.client.Get(base + path)
	if err != nil {
		f.t.Error(err)
		return 0, "", ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Error(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(body)
}

func (f *fixture) login() {
	f.t.Helper()
	if code, _, body := f.get(f.app.URL, "/login"); code != http.StatusNoContent {
		f.t.Fatalf("login: %d %s", code, body)
	}
}

// me returns the access token /api/me sees, failing the test on another
// answer than 200.
func (f *fixture) me(base string) string {
	f.t.Helper()
	code, _, body := f.get(base, "/api/me")
	if code != http.StatusOK {
		f.t.Fatalf("/api/me: %d %s", code, body)
	}
	return body
}

// concurrently runs n GETs of path at once and returns their statuses and
// bodies.
func (f *fixture) concurrently(n int, path string) ([]int, []string) {
	codes, bodies := make([]int, n), make([]string, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			codes[i], _, bodies[i] = f.get(f.app.URL, path)
		})
	}
	start.Done()
	done.Wait()
	return codes, bodies
}

func TestHappyPath(t *testing.T) {
	f := newFixture(t)
	f.login()
	tok := f.me(f.app.URL)
	if tok == "" {
		t.Fatal("empty access token")
	}
	if code, _, body := f.get(f.app.URL, "/api/patient"); code != http.StatusOK || !strings.Contains(body, `"Patient"`) {
		t.Fatalf("/api/patient: %d %s", code, body)
	}
	if f.srv.FHIRCalls() != 1 || f.srv.RefreshCalls() != 0 {
		t.Errorf("FHIRCalls=%d RefreshCalls=%d, want 1 and 0", f.srv.FHIRCalls(), f.srv.RefreshCalls())
	}
	if again := f.me(f.app.URL); again != tok {
		t.Errorf("access token changed without a refresh")
	}
}

func TestNoToken(t *testing.T) {
	f := newFixture(t)
	code, _, body := f.get(f.app.URL, "/api/me")
	var e core.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusUnauthorized || e.Error != "reauth_required" {
		t.Fatalf("got %d %s, want 401 reauth_required", code, body)
	}
}

func TestErrorHandler(t *testing.T) {
	var got error
	f := newFixture(t, echoadapter.WithErrorHandler(func(c echo.Context, err error) error {
		got = err
		return c.Redirect(http.StatusFound, "/launch")
	}))
	resp, err := f.client.Get(f.app.URL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/launch" {
		t.Fatalf("got %d Location %q, want 302 to /launch", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got != core.ErrNoToken {
		t.Errorf("error handler got %v, want core.ErrNoToken", got)
	}
}

func TestSkipper(t *testing.T) {
	f := newFixture(t, echoadapter.WithSkipper(func(c echo.Context) bool {
		return c.Path() == "/api/public"
	}))
	if code, _, body := f.get(f.app.URL, "/api/public"); code != http.StatusOK || body != "no token" {
		t.Errorf("skipped route: %d %s, want 200 without a token", code, body)
	}
	if code, _, _ := f.get(f.app.URL, "/api/me"); code != http.StatusUnauthorized {
		t.Errorf("other route: %d, want 401", code)
	}
}

func TestNoSessionManager(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	f.routes(f.r).ServeHTTP(rec, httptest.NewRequest("GET", "/api/me", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("without LoadAndSave: %d, want 500", rec.Code)
	}
}

func TestRefreshStorm(t *testing.T) {
	f := newFixture(t)
	f.login()
	old := f.me(f.app.URL)
	f.clock.Advance(time.Hour + time.Second)

	codes, bodies := f.concurrently(200, "/api/me")
	for i := range codes {
		if codes[i] != http.StatusOK || bodies[i] != bodies[0] {
			t.Fatalf("request %d: %d %q, want 200 and the token of request 0", i, codes[i], bodies[i])
		}
	}
	if bodies[0] == old {
		t.Fatal("the access token was not refreshed")
	}
	if f.srv.RefreshCalls() != 1 || f.srv.Reuses() != 0 {
		t.Fatalf("RefreshCalls=%d Reuses=%d, want 1 and 0", f.srv.RefreshCalls(), f.srv.Reuses())
	}

	// A later request uses the new token without another refresh, and so
	// does a fresh Refresher over the same sessions (a restart, with no
	// memory of the refresh): the rotated token was persisted.
	if tok := f.me(f.app.URL); tok != bodies[0] {
		t.Error("a later request got another token")
	}
	restarted := httptest.NewServer(f.sm.LoadAndSave(f.routes(f.newRefresher())))
	defer restarted.Close()
	if tok := f.me(restarted.URL); tok != bodies[0] {
		t.Error("after a restart the session holds another token")
	}
	if f.srv.RefreshCalls() != 1 || f.srv.Reuses() != 0 {
		t.Errorf("RefreshCalls=%d Reuses=%d after the storm, want 1 and 0", f.srv.RefreshCalls(), f.srv.Reuses())
	}
}

func TestRejectedToken(t *testing.T) {
	f := newFixture(t)
	f.login()
	f.srv.ExpireAccessTokens()

	codes, bodies := f.concurrently(50, "/api/patient")
	for i := range codes {
		if codes[i] != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if f.srv.RefreshCalls() != 1 || f.srv.Reuses() != 0 {
		t.Fatalf("RefreshCalls=%d Reuses=%d, want 1 and 0", f.srv.RefreshCalls(), f.srv.Reuses())
	}
}

func TestTransient(t *testing.T) {
	f := newFixture(t)
	f.login()
	old := f.me(f.app.URL)
	f.clock.Advance(time.Hour + time.Second)
	f.srv.SetTokenHook(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	code, retry, body := f.get(f.app.URL, "/api/me")
	if code != http.StatusServiceUnavailable || retry != "7" {
		t.Fatalf("got %d Retry-After %q %s, want 503 with Retry-After 7", code, retry, body)
	}

	f.srv.SetTokenHook(nil)
	if tok := f.me(f.app.URL); tok == old {
		t.Error("the access token was not refreshed")
	}
	if f.srv.RefreshCalls() != 2 || f.srv.Reuses() != 0 {
		t.Errorf("RefreshCalls=%d Reuses=%d, want 2 (one failed) and 0", f.srv.RefreshCalls(), f.srv.Reuses())
	}
}

func TestMiddlewareNilRefresher(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MiddlewareWithConfig without a Refresher did not panic")
		}
	}()
	echoadapter.MiddlewareWithConfig(echoadapter.Config{})
}

// TestMiddlewareWithConfig checks the Config form through e.Use, which
// covers every route.
func TestMiddlewareWithConfig(t *testing.T) {
	f := newFixture(t)
	e := echo.New()
	e.Use(echoadapter.MiddlewareWithConfig(echoadapter.Config{
		Refresher: f.r,
		Skipper:   func(c echo.Context) bool { return c.Path() == "/login" },
		ErrorHandler: func(c echo.Context, err error) error {
			return echo.NewHTTPError(http.StatusTeapot, err.Error())
		},
	}))
	e.GET("/login", func(c echo.Context) error {
		if err := f.r.Save(c.Request().Context(), f.srv.Grant()); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
	e.GET("/me", func(c echo.Context) error {
		tok, _ := echoadapter.Token(c)
		return c.String(http.StatusOK, tok.AccessToken)
	})
	app := httptest.NewServer(f.sm.LoadAndSave(e))
	defer app.Close()
	if code, _, _ := f.get(app.URL, "/me"); code != http.StatusTeapot {
		t.Errorf("no token: %d, want the error handler's 418", code)
	}
	if code, _, body := f.get(app.URL, "/login"); code != http.StatusNoContent {
		t.Fatalf("login: %d %s", code, body)
	}
	if code, _, body := f.get(app.URL, "/me"); code != http.StatusOK || body == "" {
		t.Errorf("after login: %d %q", code, body)
	}
}

// TestAllocs checks the hot path allocates only the context of Attach, the
// request copy of WithContext and, inside scs, the boxing of its string
// context key by SessionManager.Get.
func TestAllocs(t *testing.T) {
	f := newFixture(t)
	ctx, err := f.sm.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.r.Save(ctx, f.srv.Grant()); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/me", nil).WithContext(ctx)
	c := echo.New().NewContext(req, nil)
	ok := false
	h := echoadapter.Middleware(f.r)(func(c echo.Context) error {
		_, ok = echoadapter.Token(c)
		return nil
	})
	if n := testing.AllocsPerRun(100, func() { c.SetRequest(req); h(c) }); n > 3 {
		t.Errorf("%v allocations per request, want at most 3", n)
	}
	if !ok {
		t.Error("no token attached")
	}
}
