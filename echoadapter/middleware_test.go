package echoadapter_test

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/echoadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// app is the app of the shared scenarios (see adaptertest.App) on
// echo.New(), with the middleware configured by opts.
func app(opts ...echoadapter.Option) adaptertest.App {
	return func(env *adaptertest.Env, r *core.Refresher) http.Handler {
		e := echo.New()
		e.GET("/login", login(env, r))
		api := e.Group("/api", echoadapter.Middleware(r, opts...))
		api.GET("/me", func(c echo.Context) error {
			tok, ok := echoadapter.Token(c)
			if !ok {
				return c.String(http.StatusInternalServerError, "no token")
			}
			return c.String(http.StatusOK, tok.AccessToken)
		})
		api.GET("/patient", func(c echo.Context) error {
			resp, err := r.Client(c.Request().Context()).Get(env.Server.FHIRBaseURL + "/Patient/123")
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
}

// login saves a fresh grant of env's mock server through r, as a callback
// would.
func login(env *adaptertest.Env, r *core.Refresher) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := r.Save(c.Request().Context(), env.Grant()); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

func TestHappyPath(t *testing.T) { adaptertest.HappyPath(t, app()) }

func TestNoToken(t *testing.T) { adaptertest.NoToken(t, app()) }

func TestLaunches(t *testing.T) { adaptertest.Launches(t, app()) }

func TestErrorHandler(t *testing.T) {
	var got error
	adaptertest.ErrorHandler(t, app(echoadapter.WithErrorHandler(func(c echo.Context, err error) error {
		got = err
		return c.Redirect(http.StatusFound, "/launch")
	})), &got)
}

func TestSkipper(t *testing.T) {
	adaptertest.Skipper(t, app(echoadapter.WithSkipper(func(c echo.Context) bool {
		return c.Path() == "/api/public"
	})))
}

func TestNoSessionManager(t *testing.T) { adaptertest.NoSessionManager(t, app()) }

func TestRefreshStorm(t *testing.T) { adaptertest.RefreshStorm(t, app()) }

func TestRejectedToken(t *testing.T) { adaptertest.RejectedToken(t, app()) }

func TestTransient(t *testing.T) { adaptertest.Transient(t, app()) }

func TestMiddlewareNilRefresher(t *testing.T) {
	adaptertest.Panics(t, "MiddlewareWithConfig without a Refresher", func() {
		echoadapter.MiddlewareWithConfig(echoadapter.Config{})
	})
}

// TestMiddlewareWithConfig checks the Config form through e.Use, which
// covers every route.
func TestMiddlewareWithConfig(t *testing.T) {
	adaptertest.RouterWide(t, func(env *adaptertest.Env, r *core.Refresher) http.Handler {
		e := echo.New()
		e.Use(echoadapter.MiddlewareWithConfig(echoadapter.Config{
			Refresher: r,
			Skipper:   func(c echo.Context) bool { return c.Path() == "/login" },
			ErrorHandler: func(c echo.Context, err error) error {
				return echo.NewHTTPError(http.StatusTeapot, err.Error())
			},
		}))
		e.GET("/login", login(env, r))
		e.GET("/me", func(c echo.Context) error {
			tok, _ := echoadapter.Token(c)
			return c.String(http.StatusOK, tok.AccessToken)
		})
		return e
	}, false)
}

func TestAllocs(t *testing.T) {
	adaptertest.Allocs(t, func(r *core.Refresher, req *http.Request) func() bool {
		c := echo.New().NewContext(req, nil)
		ok := false
		h := echoadapter.Middleware(r)(func(c echo.Context) error {
			_, ok = echoadapter.Token(c)
			return nil
		})
		return func() bool { c.SetRequest(req); h(c); return ok }
	})
}

// TestCanonicalBearer: a server spelling token_type "bearer" or "BEARER"
// behind a resource server that accepts only "Bearer ".
func TestCanonicalBearer(t *testing.T) { adaptertest.CanonicalBearer(t, app()) }
