package nethttpadapter_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// BenchmarkHotPath measures one request whose token is valid, served in
// process by an http.ServeMux wrapped by scs's LoadAndSave, with the
// middleware (variant=middleware) and without it (variant=baseline): see
// adaptertest.HotPath. Compare with
//
//	benchstat -filter .name:HotPath -col /variant
func BenchmarkHotPath(b *testing.B) { adaptertest.HotPath(b, "nethttp", hotPathApp) }

// BenchmarkHotPathPaired serves the same session alternately through the
// router without and with the middleware, and reports the median time of
// each variant and the middleware's overhead: see adaptertest.HotPathPaired.
func BenchmarkHotPathPaired(b *testing.B) { adaptertest.HotPathPaired(b, "nethttp", hotPathApp) }

// hotPathApp is the router of the hot-path benchmarks (see
// adaptertest.HotPathApp) on an http.ServeMux.
func hotPathApp(r *core.Refresher, withMiddleware bool) http.Handler {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if withMiddleware {
			if _, ok := nethttpadapter.Token(req); !ok {
				http.Error(w, "no token", http.StatusInternalServerError)
				return
			}
		}
		io.WriteString(w, "ok")
	})
	if withMiddleware {
		h = nethttpadapter.Middleware(r)(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", h)
	return mux
}
