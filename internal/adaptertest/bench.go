package adaptertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// hotPathCommits are the two ways scs saves a session. commit=changed is
// its default: a request that changes nothing does not write the session
// back. commit=always sets IdleTimeout, as the demos do, so that every
// request re-encodes and stores the session.
var hotPathCommits = []struct {
	name string
	idle time.Duration
}{{"changed", 0}, {"always", 30 * time.Minute}}

// HotPathApp builds, with the adapter's framework, the router of the
// hot-path benchmarks, without LoadAndSave: GET /api/me answering 200 "ok".
// Its handler does the same trivial work in both variants; withMiddleware,
// the route is behind the adapter's middleware over r and the handler also
// checks that a token is attached (500 "no token" if not).
type HotPathApp func(r *core.Refresher, withMiddleware bool) http.Handler

// HotPath, run by each adapter's BenchmarkHotPath, measures one request
// whose token is valid, served in process by app wrapped by scs's
// LoadAndSave, with the middleware (variant=middleware) and without it
// (variant=baseline), as the sub-benchmarks adapter=NAME/commit=…/variant=….
// Both variants use the same session manager configuration and the same
// session contents (a saved token), so the difference is the middleware's
// cost. Compare with
//
//	benchstat -filter .name:HotPath -col /variant
func HotPath(b *testing.B, adapter string, app HotPathApp) {
	b.Run("adapter="+adapter, func(b *testing.B) {
		for _, commit := range hotPathCommits {
			b.Run("commit="+commit.name, func(b *testing.B) {
				for _, variant := range []string{"baseline", "middleware"} {
					b.Run("variant="+variant, func(b *testing.B) {
						hp := newHotPathEnv(b, commit.idle)
						h := hp.app(app, variant == "middleware")
						hp.check(h)
						b.ReportAllocs()
						for b.Loop() {
							h.ServeHTTP(httptest.NewRecorder(), hp.req)
						}
						hp.check(h)
					})
				}
			})
		}
	})
}

// HotPathPaired, run by each adapter's BenchmarkHotPathPaired, serves the
// same session alternately through app without and with the middleware, as
// the sub-benchmarks adapter=NAME/commit=…, and reports the median time of
// each variant and the middleware's overhead: the median of the paired
// differences, in percent of the baseline's median. Pairing and medians
// cancel most of the noise of a shared machine (other processes, garbage
// collection), which the separate runs of BenchmarkHotPath suffer. An op is
// one request of each variant.
//
// The session is one of sessionKinds: session=saved holds the one login
// Save stored (as before launches had ids); session=1launch and
// session=4launches hold launches made by a Launcher, and the request
// names the most recent one in X-SMART-Launch.
func HotPathPaired(b *testing.B, adapter string, app HotPathApp) {
	b.Run("adapter="+adapter, func(b *testing.B) {
		for _, commit := range hotPathCommits {
			b.Run("commit="+commit.name, func(b *testing.B) {
				for _, kind := range sessionKinds {
					b.Run("session="+kind.name, func(b *testing.B) {
						hp := newHotPathEnv(b, commit.idle, kind.launches)
						baseline, middleware := hp.app(app, false), hp.app(app, true)
						hp.check(baseline)
						hp.check(middleware)
						var base, diff []time.Duration
						odd := false
						for b.Loop() {
							var tb, tm time.Duration
							// Each variant goes first every other time.
							if odd = !odd; odd {
								tb, tm = hp.timed(baseline), hp.timed(middleware)
							} else {
								tm, tb = hp.timed(middleware), hp.timed(baseline)
							}
							base, diff = append(base, tb), append(diff, tm-tb)
						}
						hp.check(middleware)
						reportPaired(b, base, diff)
					})
				}
			})
		}
	})
}

// sessionKinds are the sessions of HotPathPaired: launches 0 is a session
// saved by Save.
var sessionKinds = []struct {
	name     string
	launches int
}{{"saved", 0}, {"1launch", 1}, {"4launches", 4}}

// reportPaired reports the medians of the baseline times and of the paired
// differences.
func reportPaired(b *testing.B, base, diff []time.Duration) {
	slices.Sort(base)
	slices.Sort(diff)
	mb, md := base[len(base)/2], diff[len(diff)/2]
	b.ReportMetric(float64(mb.Nanoseconds()), "baseline-ns/req")
	b.ReportMetric(float64((mb + md).Nanoseconds()), "middleware-ns/req")
	b.ReportMetric(100*float64(md)/float64(mb), "overhead-%")
}

// hotPathEnv is an Env on the real time whose session manager has IdleTimeout
// idle, a session holding a valid token, and a request carrying its cookie.
type hotPathEnv struct {
	*Env
	req *http.Request
}

func newHotPathEnv(b *testing.B, idle time.Duration, launches ...int) *hotPathEnv {
	n := 0
	if len(launches) > 0 {
		n = launches[0]
	}
	if n == 0 {
		hp := &hotPathEnv{Env: NewEnv(b, WithSystemClock(), WithIdleTimeout(idle))}
		ctx := hp.LoggedIn()
		hp.req = httptest.NewRequest(http.MethodGet, "/api/me", nil)
		hp.req.AddCookie(&http.Cookie{Name: hp.Sessions.Cookie.Name, Value: hp.Sessions.Token(ctx)})
		return hp
	}
	patients := map[string]string{}
	for i := range n {
		patients[fmt.Sprintf("l%d", i)] = fmt.Sprintf("P%d", i)
	}
	hp := &hotPathEnv{Env: NewEnv(b, WithSystemClock(), WithIdleTimeout(idle), WithLaunches(patients))}
	var id string
	for i := range n {
		id = hp.Launch(fmt.Sprintf("l%d", i))
	}
	ctx := hp.LaunchSession()
	hp.req = httptest.NewRequest(http.MethodGet, "/api/me", nil)
	hp.req.AddCookie(&http.Cookie{Name: hp.Sessions.Cookie.Name, Value: hp.Sessions.Token(ctx)})
	hp.req.Header.Set(core.LaunchHeader, id)
	return hp
}

// app returns the router of app, wrapped by LoadAndSave.
func (hp *hotPathEnv) app(app HotPathApp, withMiddleware bool) http.Handler {
	return hp.Sessions.LoadAndSave(app(hp.Refresher, withMiddleware))
}

// timed serves one request through app and returns how long it took.
func (hp *hotPathEnv) timed(app http.Handler) time.Duration {
	start := time.Now()
	app.ServeHTTP(httptest.NewRecorder(), hp.req)
	return time.Since(start)
}

// check serves one request through app and fails unless it answered "ok"
// without a token call.
func (hp *hotPathEnv) check(app http.Handler) {
	hp.TB.Helper()
	w := httptest.NewRecorder()
	app.ServeHTTP(w, hp.req)
	if w.Code != http.StatusOK || w.Body.String() != "ok" {
		hp.TB.Fatalf("%d %q, want 200 ok", w.Code, w.Body.String())
	}
	if n := hp.Server.RefreshCalls(); n != 0 {
		hp.TB.Fatalf("the hot path made %d token calls", n)
	}
}
