package echoadapter_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/echoadapter"
)

// newRefresher returns a Refresher for the examples. Its token endpoint is
// never called by them.
func newRefresher(sm *scs.SessionManager) *core.Refresher {
	r, err := core.New(core.Config{
		TokenURL:     "https://ehr.example.com/oauth2/token",
		ClientID:     "my-app",
		ClientSecret: "my-secret",
		AuthMethod:   core.ClientSecretBasic,
		Sessions:     sm,
	})
	if err != nil {
		log.Fatal(err)
	}
	return r
}

// newLauncher returns the SMART launch of the examples' app: mount its
// LaunchHandler at /launch and its CallbackHandler at the RedirectURL.
func newLauncher(r *core.Refresher) *core.Launcher {
	l, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL:  "https://app.example.com/callback", // registered at the server
		Scope:        "launch/patient patient/*.read openid fhirUser offline_access",
		FHIRBaseURL:  "https://ehr.example.com/fhir",
		AuthorizeURL: "https://ehr.example.com/oauth2/authorize",
	})
	if err != nil {
		log.Fatal(err)
	}
	return l
}

// The session manager's LoadAndSave wraps the whole Echo engine; the
// middleware protects the API group only. A request without a token gets
// the default 401 JSON answer.
func ExampleMiddleware() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	launcher := newLauncher(refresher)
	e.GET("/launch", echo.WrapHandler(launcher.LaunchHandler()))     // EHR and standalone launch
	e.GET("/callback", echo.WrapHandler(launcher.CallbackHandler())) // exchanges the code, saves the token
	api := e.Group("/api", echoadapter.Middleware(refresher))
	api.GET("/patient", func(c echo.Context) error {
		// The Refresher's client sends the session's token and handles a
		// 401 of the FHIR server by refreshing once.
		resp, err := refresher.Client(c.Request().Context()).Get("https://ehr.example.com/fhir/Patient/123")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return c.Stream(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Body)
	})
	handler := sessionManager.LoadAndSave(e)
	// http.ListenAndServe(":8080", handler)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/patient", nil))
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), `"error":"reauth_required"`))
	// Output: 401 true
}

// MiddlewareWithConfig is Echo's usual form; with e.Use it covers every
// route, so the routes that need no token are skipped.
func ExampleMiddlewareWithConfig() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	e.Use(echoadapter.MiddlewareWithConfig(echoadapter.Config{
		Refresher: refresher,
		Skipper: func(c echo.Context) bool {
			return c.Path() == "/launch" || c.Path() == "/callback"
		},
	}))
	e.GET("/launch", func(c echo.Context) error { return c.String(http.StatusOK, "launching") })
	e.GET("/chart", func(c echo.Context) error { return c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(e)

	for _, path := range []string{"/launch", "/chart"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code)
	}
	// Output:
	// /launch 200
	// /chart 401
}

func ExampleToken() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	e.GET("/me", func(c echo.Context) error {
		tok, ok := echoadapter.Token(c)
		if !ok {
			return echo.ErrUnauthorized // not behind the middleware
		}
		return c.JSON(http.StatusOK, map[string]any{"patient": tok.Patient, "expiry": tok.Expiry})
	}, echoadapter.Middleware(refresher))
	_ = sessionManager.LoadAndSave(e)
}

func ExampleWithSkipper() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	api := e.Group("/api", echoadapter.Middleware(refresher,
		echoadapter.WithSkipper(func(c echo.Context) bool { return c.Path() == "/api/health" })))
	api.GET("/health", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	_ = sessionManager.LoadAndSave(e)
}

// A browser app sends the user to launch again instead of answering 401,
// and keeps the default answer (with Retry-After) for the other errors.
func ExampleWithErrorHandler() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	e.Use(echoadapter.Middleware(refresher, echoadapter.WithErrorHandler(func(c echo.Context, err error) error {
		if errors.Is(err, core.ErrReauthRequired) {
			return c.Redirect(http.StatusFound, "/launch")
		}
		c.Logger().Error(err)
		core.WriteError(c.Response(), c.Request(), err) // the default answer
		return nil
	})))
	e.GET("/chart", func(c echo.Context) error { return c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(e)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/chart", nil))
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output: 302 /launch
}

// Browser navigations that need a new authorization go to the launch page;
// API calls still get the JSON 401.
func ExampleWithLoginURL() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	e := echo.New()
	e.Use(echoadapter.Middleware(refresher, echoadapter.WithLoginURL("/launch"),
		echoadapter.WithSkipper(func(c echo.Context) bool { return c.Path() == "/launch" })))
	e.GET("/chart", func(c echo.Context) error { return c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(e)

	page := httptest.NewRequest("GET", "/chart", nil)
	page.Header.Set("Sec-Fetch-Mode", "navigate")
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, page)
	fmt.Println(rec.Code, rec.Header().Get("Location"))

	api := httptest.NewRequest("GET", "/chart", nil)
	api.Header.Set("Accept", "application/json")
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, api)
	fmt.Println(rec.Code)
	// Output:
	// 303 /launch?return_to=%2Fchart
	// 401
}

// Without an error handler, the middleware answers with core.WriteError's
// JSON.
func ExampleMiddleware_defaultAnswer() {
	sessionManager := scs.New()
	e := echo.New()
	e.Use(echoadapter.Middleware(newRefresher(sessionManager)))
	e.GET("/api/chart", func(c echo.Context) error { return c.String(http.StatusOK, "chart") })
	rec := httptest.NewRecorder()
	sessionManager.LoadAndSave(e).ServeHTTP(rec, httptest.NewRequest("GET", "/api/chart", nil))
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 401 {"error":"reauth_required","error_description":"no token in session; launch or log in"}
}
