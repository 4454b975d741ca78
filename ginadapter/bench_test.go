package ginadapter_test

import (
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/ginadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// BenchmarkHotPath measures one request whose token is valid, served in
// process by gin.New() in release mode wrapped by scs's LoadAndSave, with
// the middleware (variant=middleware) and without it (variant=baseline):
// see adaptertest.HotPath. Compare with
//
//	benchstat -filter .name:HotPath -col /variant
func BenchmarkHotPath(b *testing.B) {
	releaseMode(b)
	adaptertest.HotPath(b, "gin", hotPathApp)
}

// BenchmarkHotPathPaired serves the same session alternately through the
// router without and with the middleware, and reports the median time of
// each variant and the middleware's overhead: see adaptertest.HotPathPaired.
func BenchmarkHotPathPaired(b *testing.B) {
	releaseMode(b)
	adaptertest.HotPathPaired(b, "gin", hotPathApp)
}

// releaseMode puts gin in release mode for the benchmark.
func releaseMode(b *testing.B) {
	mode := gin.Mode()
	gin.SetMode(gin.ReleaseMode)
	b.Cleanup(func() { gin.SetMode(mode) })
}

// hotPathApp is the router of the hot-path benchmarks (see
// adaptertest.HotPathApp) on gin.New().
func hotPathApp(r *core.Refresher, withMiddleware bool) http.Handler {
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
		handlers = append([]gin.HandlerFunc{ginadapter.Middleware(r)}, handlers...)
	}
	router.GET("/api/me", handlers...)
	return router
}
