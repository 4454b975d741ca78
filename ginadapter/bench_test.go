package ginadapter_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/ginadapter"
)

// hotPathCommits are the two ways scs saves a session. commit=changed is
// its default: a request that changes nothing does not write the session
// back. commit=always sets IdleTimeout, as the demos do, so that every
// request re-encodes and stores the session.
var hotPathCommits = []struct {
	name string
	idle time.Duration
}{{"changed", 0}, {"always", 30 * time.Minute}}

// BenchmarkHotPath measures one request whose token is valid, served in
// process by gin.New() in release mode wrapped by scs's LoadAndSave, with
// the middleware (variant=middleware) and without it (variant=baseline).
// Both variants use the same session manager configuration and the same
// session contents (a saved token), so the difference is the middleware's
// cost. Compare with
//
//	benchstat -filter .name:HotPath -col /variant
func BenchmarkHotPath(b *testing.B) {
	releaseMode(b)
	b.Run("adapter=gin", func(b *testing.B) {
		for _, commit := range hotPathCommits {
			b.Run("commit="+commit.name, func(b *testing.B) {
				for _, variant := range []string{"baseline", "middleware"} {
					b.Run("variant="+variant, func(b *testing.B) {
						hp := newHotPath(b, commit.idle)
						app := hp.app(variant == "middleware")
						hp.check(app)
						b.ReportAllocs()
						for b.Loop() {
							app.ServeHTTP(httptest.NewRecorder(), hp.req)
						}
						hp.check(app)
					})
				}
			})
		}
	})
}

// BenchmarkHotPathPaired serves the same session alternately through the
// router without and with the middleware, and reports the median time of
// each variant and the middleware's overhead: the median of the paired
// differences, in percent of the baseline's median. Pairing and medians
// cancel most of the noise of a shared machine (other processes, garbage
// collection), which the separate runs of BenchmarkHotPath suffer. An op is
// one request of each variant.
func BenchmarkHotPathPaired(b *testing.B) {
	releaseMode(b)
	b.Run("adapter=gin", func(b *testing.B) {
		for _, commit := range hotPathCommits {
			b.Run("commit="+commit.name, func(b *testing.B) {
				hp := newHotPath(b, commit.idle)
				baseline, middleware := hp.app(false), hp.app(true)
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

// releaseMode puts gin in release mode for the benchmark.
func releaseMode(b *testing.B) {
	mode := gin.Mode()
	gin.SetMode(gin.ReleaseMode)
	b.Cleanup(func() { gin.SetMode(mode) })
}

// hotPath is a session manager with IdleTimeout idle, a session holding a
// valid token, and a request carrying its cookie.
type hotPath struct {
	b   *testing.B
	srv *smarttest.Server
	sm  *scs.SessionManager
	r   *core.Refresher
	req *http.Request
}

func newHotPath(b *testing.B, idle time.Duration) *hotPath {
	hp := &hotPath{b: b, srv: smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour}), sm: scs.New()}
	b.Cleanup(hp.srv.Close)
	hp.sm.IdleTimeout = idle
	r, err := core.New(core.Config{
		TokenURL: hp.srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: hp.sm,
	})
	if err != nil {
		b.Fatal(err)
	}
	hp.r = r
	// Log in, as an app's callback would.
	ctx, err := hp.sm.Load(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Save(ctx, hp.srv.Grant()); err != nil {
		b.Fatal(err)
	}
	hp.req = httptest.NewRequest(http.MethodGet, "/api/me", nil)
	hp.req.AddCookie(&http.Cookie{Name: hp.sm.Cookie.Name, Value: hp.sm.Token(ctx)})
	return hp
}

// app returns the router, wrapped by LoadAndSave. Its handler does the same
// trivial work in both variants; with the middleware it also checks that a
// token is attached.
func (hp *hotPath) app(withMiddleware bool) http.Handler {
	router := gin.New()
	handlers := []gin.HandlerFunc{func(c *gin.Context) {
		if withMiddleware {
			if _, ok := ginadapter.Token(c); !ok {
				c.String(http.StatusInternalServerError, "no token")
				return
			}
		}
		c.String(http.StatusOK, "ok")
	}}
	if withMiddleware {
		handlers = append([]gin.HandlerFunc{ginadapter.Middleware(hp.r)}, handlers...)
	}
	router.GET("/api/me", handlers...)
	return hp.sm.LoadAndSave(router)
}

// timed serves one request through app and returns how long it took.
func (hp *hotPath) timed(app http.Handler) time.Duration {
	start := time.Now()
	app.ServeHTTP(httptest.NewRecorder(), hp.req)
	return time.Since(start)
}

// check serves one request through app and fails unless it answered "ok"
// without a token call.
func (hp *hotPath) check(app http.Handler) {
	hp.b.Helper()
	w := httptest.NewRecorder()
	app.ServeHTTP(w, hp.req)
	if w.Code != http.StatusOK || w.Body.String() != "ok" {
		hp.b.Fatalf("%d %q, want 200 ok", w.Code, w.Body.String())
	}
	if n := hp.srv.TokenCalls(); n != 0 {
		hp.b.Fatalf("the hot path made %d token calls", n)
	}
}
