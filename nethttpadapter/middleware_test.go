package nethttpadapter_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// app is the app of the shared scenarios (see adaptertest.App) on an
// http.ServeMux, with the middleware configured by opts.
func app(opts ...nethttpadapter.Option) adaptertest.App {
	return func(e *adaptertest.Env, r *core.Refresher) http.Handler {
		api := http.NewServeMux()
		api.HandleFunc("GET /api/me", func(w http.ResponseWriter, req *http.Request) {
			tok, ok := nethttpadapter.Token(req)
			if !ok {
				http.Error(w, "no token", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, tok.AccessToken)
		})
		api.HandleFunc("GET /api/patient", func(w http.ResponseWriter, req *http.Request) {
			resp, err := r.Client(req.Context()).Get(e.Server.FHIRBaseURL + "/Patient/123")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
		api.HandleFunc("GET /api/public", func(w http.ResponseWriter, req *http.Request) {
			_, ok := nethttpadapter.Token(req)
			io.WriteString(w, map[bool]string{true: "token", false: "no token"}[ok])
		})
		mux := http.NewServeMux()
		mux.HandleFunc("GET /login", func(w http.ResponseWriter, req *http.Request) {
			if err := r.Save(req.Context(), e.Grant()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		mux.Handle("/api/", nethttpadapter.Middleware(r, opts...)(api))
		return mux
	}
}

func TestHappyPath(t *testing.T) { adaptertest.HappyPath(t, app()) }

func TestNoToken(t *testing.T) { adaptertest.NoToken(t, app()) }

func TestLaunches(t *testing.T) { adaptertest.Launches(t, app()) }

func TestErrorHandler(t *testing.T) {
	var got error
	adaptertest.ErrorHandler(t, app(nethttpadapter.WithErrorHandler(func(w http.ResponseWriter, req *http.Request, err error) {
		got = err
		http.Redirect(w, req, "/launch", http.StatusFound)
	})), &got)
}

func TestSkipper(t *testing.T) {
	adaptertest.Skipper(t, app(nethttpadapter.WithSkipper(func(req *http.Request) bool {
		return req.URL.Path == "/api/public"
	})))
}

func TestNoSessionManager(t *testing.T) { adaptertest.NoSessionManager(t, app()) }

func TestRefreshStorm(t *testing.T) { adaptertest.RefreshStorm(t, app()) }

func TestRejectedToken(t *testing.T) { adaptertest.RejectedToken(t, app()) }

func TestTransient(t *testing.T) { adaptertest.Transient(t, app()) }

func TestMiddlewareNilRefresher(t *testing.T) {
	adaptertest.Panics(t, "Middleware(nil)", func() { nethttpadapter.Middleware(nil) })
}

func TestAllocs(t *testing.T) {
	adaptertest.Allocs(t, func(r *core.Refresher, req *http.Request) func() bool {
		ok := false
		h := nethttpadapter.Middleware(r)(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
			_, ok = nethttpadapter.Token(req)
		}))
		return func() bool { h.ServeHTTP(nil, req); return ok }
	})
}

// TestCanonicalBearer: a server spelling token_type "bearer" or "BEARER"
// behind a resource server that accepts only "Bearer ".
func TestCanonicalBearer(t *testing.T) { adaptertest.CanonicalBearer(t, app()) }
