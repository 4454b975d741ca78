package echoadapter_test

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/echoadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// BenchmarkHotPath measures one request whose token is valid, served in
// process by echo.New() wrapped by scs's LoadAndSave, with the middleware
// (variant=middleware) and without it (variant=baseline): see
// adaptertest.HotPath. Compare with
//
//	benchstat -filter .name:HotPath -col /variant
func BenchmarkHotPath(b *testing.B) { adaptertest.HotPath(b, "echo", hotPathApp) }

// BenchmarkHotPathPaired serves the same session alternately through the
// router without and with the middleware, and reports the median time of
// each variant and the middleware's overhead: see adaptertest.HotPathPaired.
func BenchmarkHotPathPaired(b *testing.B) { adaptertest.HotPathPaired(b, "echo", hotPathApp) }

// hotPathApp is the router of the hot-path benchmarks (see
// adaptertest.HotPathApp) on echo.New().
func hotPathApp(r *core.Refresher, withMiddleware bool) http.Handler {
	e := echo.New()
	var mw []echo.MiddlewareFunc
	if withMiddleware {
		mw = append(mw, echoadapter.Middleware(r))
	}
	e.GET("/api/me", func(c echo.Context) error {
		if withMiddleware {
			if _, ok := echoadapter.Token(c); !ok {
				return c.String(http.StatusInternalServerError, "no token")
			}
		}
		return c.String(http.StatusOK, "ok")
	}, mw...)
	return e
}
