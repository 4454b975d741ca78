// Package adaptertest holds the test fixtures and scenarios shared by the
// tests of nethttpadapter, echoadapter and ginadapter: a mock SMART server,
// an scs session manager and a core.Refresher over them (Env), a client
// with a cookie jar, the scenarios every adapter must pass and the hot-path
// benchmark harness.
//
// It imports no web framework. Each adapter's tests supply the one
// framework-specific piece, the app built with the adapter's middleware
// (App), and call the scenarios from their own Test and Benchmark
// functions, so that test and benchmark names stay per package.
package adaptertest

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// Epoch is the time a Clock of NewEnv starts at.
var Epoch = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// Clock is the settable clock shared by the mock server and the Refresher.
type Clock = smarttest.Clock

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return smarttest.NewClock(t) }

// Option configures NewEnv.
type Option func(*options)

type options struct {
	systemClock bool
	idle        time.Duration
	launches    map[string]string
}

// WithLaunches serves a Launcher over the Env's Refresher (at another
// address of the same host, so that the client's cookies reach it), whose
// EHR launches get a patient each from the mock server by launch value
// (smarttest.Options.LaunchPatients): see Env.Launch.
func WithLaunches(patients map[string]string) Option {
	return func(o *options) { o.launches = patients }
}

// WithSystemClock makes the mock server and the Refresher use the real
// time (their default) instead of a Clock; Env.Clock is then nil.
func WithSystemClock() Option { return func(o *options) { o.systemClock = true } }

// WithIdleTimeout sets the session manager's IdleTimeout, with which scs
// writes the session back on every request.
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idle = d } }

// Env is a mock SMART server (access tokens valid for an hour), an scs
// session manager, a Refresher over them and a client with a cookie jar
// that follows no redirect. Start also serves an App at URL.
type Env struct {
	TB        testing.TB
	Clock     *Clock // nil WithSystemClock
	Server    *smarttest.Server
	Sessions  *scs.SessionManager
	Refresher *core.Refresher
	Client    *http.Client
	URL       string // where Start serves the app
	// Grant issues the grant an app's /login saves, as after a code
	// exchange: Server.Grant unless a scenario changes it.
	Grant func() *core.Token
	// launchURL is the Launcher's launch route, WithLaunches.
	launchURL string
}

// NewEnv returns an Env whose servers and client are closed when the test
// ends.
func NewEnv(tb testing.TB, opts ...Option) *Env {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	e := &Env{TB: tb, Sessions: scs.New()}
	e.Sessions.IdleTimeout = o.idle
	if !o.systemClock {
		e.Clock = NewClock(Epoch)
	}
	so := smarttest.Options{AccessTokenTTL: time.Hour, Now: e.now()}
	var launcher *httptest.Server
	if o.launches != nil {
		launcher = httptest.NewUnstartedServer(nil)
		so.RedirectURIs = []string{"http://" + launcher.Listener.Addr().String() + "/callback"}
		so.LaunchPatients = o.launches
	}
	e.Server = smarttest.NewServer(so)
	tb.Cleanup(e.Server.Close)
	e.Grant = e.Server.Grant
	e.Refresher = e.NewRefresher()
	if launcher != nil {
		l, err := core.NewLauncher(e.Refresher, core.LaunchConfig{
			RedirectURL: so.RedirectURIs[0], Scope: "launch patient/*.read offline_access", FHIRBaseURL: e.Server.FHIRBaseURL,
		})
		if err != nil {
			tb.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /launch", l.LaunchHandler())
		mux.Handle("GET /callback", l.CallbackHandler())
		launcher.Config.Handler = e.Sessions.LoadAndSave(mux)
		launcher.Start()
		tb.Cleanup(launcher.Close)
		e.launchURL = launcher.URL + "/launch"
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	e.Client = &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 256},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tb.Cleanup(e.Client.CloseIdleConnections)
	return e
}

// now returns the clock for the mock server and the Refresher: nil, their
// default, WithSystemClock.
func (e *Env) now() func() time.Time {
	if e.Clock == nil {
		return nil
	}
	return e.Clock.Now
}

// NewRefresher returns another Refresher over the Env's mock server and
// sessions, as after a restart of the app.
func (e *Env) NewRefresher() *core.Refresher {
	e.TB.Helper()
	r, err := core.New(core.Config{
		TokenURL: e.Server.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: e.Sessions, Now: e.now(),
	})
	if err != nil {
		e.TB.Fatal(err)
	}
	return r
}

// Serve serves h wrapped by the session manager's LoadAndSave until the
// test ends, and returns its URL.
func (e *Env) Serve(h http.Handler) string {
	srv := httptest.NewServer(e.Sessions.LoadAndSave(h))
	e.TB.Cleanup(srv.Close)
	return srv.URL
}

// LoggedIn returns the context of a new session that holds a fresh grant,
// saved as an app's callback would.
func (e *Env) LoggedIn() context.Context {
	e.TB.Helper()
	ctx, err := e.Sessions.Load(context.Background(), "")
	if err != nil {
		e.TB.Fatal(err)
	}
	if err := e.Refresher.Save(ctx, e.Grant()); err != nil {
		e.TB.Fatal(err)
	}
	return ctx
}

// Launch runs an EHR launch with the launch value launch (WithLaunches) in
// the Env's client and returns the launch id the callback named.
func (e *Env) Launch(launch string) string {
	e.TB.Helper()
	landing, err := e.Server.Login(e.Client, e.launchURL+"?iss="+url.QueryEscape(e.Server.FHIRBaseURL)+"&launch="+url.QueryEscape(launch))
	if err != nil {
		e.TB.Fatal(err)
	}
	u, err := url.Parse(landing)
	if err != nil || u.Query().Get(core.LaunchParam) == "" {
		e.TB.Fatalf("the callback sent the browser to %q, without %s", landing, core.LaunchParam)
	}
	return u.Query().Get(core.LaunchParam)
}

// LaunchSession returns the session of the Env's client, which Launch
// logged in, loaded as LoadAndSave loads it for a request.
func (e *Env) LaunchSession() context.Context {
	e.TB.Helper()
	u, _ := url.Parse(e.launchURL)
	var token string
	for _, c := range e.Client.Jar.Cookies(u) {
		if c.Name == e.Sessions.Cookie.Name {
			token = c.Value
		}
	}
	ctx, err := e.Sessions.Load(context.Background(), token)
	if err != nil || e.Sessions.Token(ctx) == "" {
		e.TB.Fatalf("loading the launched session: %v", err)
	}
	return ctx
}
