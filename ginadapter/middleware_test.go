package ginadapter_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/ginadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

// app is the app of the shared scenarios (see adaptertest.App) on
// gin.New(), with the middleware configured by opts.
func app(opts ...ginadapter.Option) adaptertest.App {
	return func(env *adaptertest.Env, r *core.Refresher) http.Handler {
		router := gin.New()
		router.GET("/login", login(env, r))
		api := router.Group("/api", ginadapter.Middleware(r, opts...))
		api.GET("/me", func(c *gin.Context) {
			tok, ok := ginadapter.Token(c)
			if !ok {
				c.String(http.StatusInternalServerError, "no token")
				return
			}
			c.String(http.StatusOK, tok.AccessToken)
		})
		api.GET("/patient", func(c *gin.Context) {
			resp, err := r.Client(c.Request.Context()).Get(env.Server.FHIRBaseURL + "/Patient/123")
			if err != nil {
				c.String(http.StatusBadGateway, err.Error())
				return
			}
			defer resp.Body.Close()
			c.DataFromReader(resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type"), resp.Body, nil)
		})
		api.GET("/public", func(c *gin.Context) {
			_, ok := ginadapter.Token(c)
			c.String(http.StatusOK, map[bool]string{true: "token", false: "no token"}[ok])
		})
		return router
	}
}

// login saves a fresh grant of env's mock server through r, as a callback
// would.
func login(env *adaptertest.Env, r *core.Refresher) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := r.Save(c.Request.Context(), env.Grant()); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.Status(http.StatusNoContent)
	}
}

func TestHappyPath(t *testing.T) { adaptertest.HappyPath(t, app()) }

func TestNoToken(t *testing.T) { adaptertest.NoToken(t, app()) }

func TestLaunches(t *testing.T) { adaptertest.Launches(t, app()) }

func TestErrorHandler(t *testing.T) {
	var got error
	adaptertest.ErrorHandler(t, app(ginadapter.WithErrorHandler(func(c *gin.Context, err error) {
		got = err
		c.Redirect(http.StatusFound, "/launch") // no Abort: the middleware aborts
	})), &got)
}

func TestSkipper(t *testing.T) {
	adaptertest.Skipper(t, app(ginadapter.WithSkipper(func(c *gin.Context) bool {
		return c.FullPath() == "/api/public"
	})))
}

func TestNoSessionManager(t *testing.T) { adaptertest.NoSessionManager(t, app()) }

func TestRefreshStorm(t *testing.T) { adaptertest.RefreshStorm(t, app()) }

func TestRejectedToken(t *testing.T) { adaptertest.RejectedToken(t, app()) }

func TestTransient(t *testing.T) { adaptertest.Transient(t, app()) }

func TestMiddlewareNilRefresher(t *testing.T) {
	adaptertest.Panics(t, "New without a Refresher", func() { ginadapter.New(ginadapter.Config{}) })
}

// TestNew checks the Config form through router.Use, which covers every
// route, with an error handler that neither writes nor aborts: the
// protected handler must not run.
func TestNew(t *testing.T) {
	adaptertest.RouterWide(t, func(env *adaptertest.Env, r *core.Refresher) http.Handler {
		router := gin.New()
		router.Use(ginadapter.New(ginadapter.Config{
			Refresher:    r,
			Skipper:      func(c *gin.Context) bool { return c.FullPath() == "/login" },
			ErrorHandler: func(c *gin.Context, err error) { c.Status(http.StatusTeapot) },
		}))
		router.GET("/login", login(env, r))
		router.GET("/me", func(c *gin.Context) {
			tok, _ := ginadapter.Token(c)
			c.String(http.StatusOK, tok.AccessToken)
		})
		return router
	}, true)
}

func TestAllocs(t *testing.T) {
	adaptertest.Allocs(t, func(r *core.Refresher, req *http.Request) func() bool {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		h := ginadapter.Middleware(r)
		return func() bool {
			c.Request = req
			h(c)
			_, ok := ginadapter.Token(c)
			return ok
		}
	})
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// TestCanonicalBearer: a server spelling token_type "bearer" or "BEARER"
// behind a resource server that accepts only "Bearer ".
func TestCanonicalBearer(t *testing.T) { adaptertest.CanonicalBearer(t, app()) }

// TestGinContextWithoutFallback: a handler that passes *gin.Context as the
// context, on an engine with ContextWithFallback off (the default), gets an
// error that names that cause, not a missing LoadAndSave.
func TestGinContextWithoutFallback(t *testing.T) {
	env := adaptertest.NewEnv(t)
	router := gin.New()
	router.GET("/login", login(env, env.Refresher))
	var got error
	router.GET("/token", func(c *gin.Context) {
		_, got = env.Refresher.Token(c)
		c.Status(http.StatusNoContent)
	})
	srv := httptest.NewServer(env.Sessions.LoadAndSave(router))
	defer srv.Close()
	for _, path := range []string{"/login", "/token"} {
		resp, err := env.Client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if !errors.Is(got, core.ErrNoSession) {
		t.Fatalf("err = %v, want ErrNoSession", got)
	}
	for _, want := range []string{"*gin.Context", "ContextWithFallback", "c.Request.Context()"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("error %q does not mention %s", got, want)
		}
	}
	if strings.Contains(got.Error(), "wrap the handler") {
		t.Errorf("error %q blames a missing LoadAndSave", got)
	}

	router.ContextWithFallback = true
	got = nil
	resp, err := env.Client.Get(srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != nil {
		t.Errorf("with ContextWithFallback: %v", got)
	}
}
