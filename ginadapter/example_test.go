package ginadapter_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/ginadapter"
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

// The session manager's LoadAndSave wraps the whole Gin engine; the
// middleware protects the API group only. A request without a token gets
// the default 401 JSON answer.
func ExampleMiddleware() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	router := gin.New()
	launcher := newLauncher(refresher)
	router.GET("/launch", gin.WrapH(launcher.LaunchHandler()))     // EHR and standalone launch
	router.GET("/callback", gin.WrapH(launcher.CallbackHandler())) // exchanges the code, saves the token
	api := router.Group("/api", ginadapter.Middleware(refresher))
	api.GET("/patient", func(c *gin.Context) {
		// The Refresher's client sends the session's token and handles a
		// 401 of the FHIR server by refreshing once.
		resp, err := refresher.Client(c.Request.Context()).Get("https://ehr.example.com/fhir/Patient/123")
		if err != nil {
			c.AbortWithStatus(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		c.DataFromReader(resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type"), resp.Body, nil)
	})
	handler := sessionManager.LoadAndSave(router)
	// http.ListenAndServe(":8080", handler)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/patient", nil))
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), `"error":"reauth_required"`))
	// Output: 401 true
}

// New is the gin-contrib form; with router.Use it covers every route, so
// the routes that need no token are skipped.
func ExampleNew() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	router := gin.New()
	router.Use(ginadapter.New(ginadapter.Config{
		Refresher: refresher,
		Skipper: func(c *gin.Context) bool {
			return c.FullPath() == "/launch" || c.FullPath() == "/callback"
		},
	}))
	router.GET("/launch", func(c *gin.Context) { c.String(http.StatusOK, "launching") })
	router.GET("/chart", func(c *gin.Context) { c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(router)

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

	router := gin.New()
	router.GET("/me", ginadapter.Middleware(refresher), func(c *gin.Context) {
		tok, ok := ginadapter.Token(c)
		if !ok {
			c.AbortWithStatus(http.StatusUnauthorized) // not behind the middleware
			return
		}
		c.JSON(http.StatusOK, gin.H{"patient": tok.Patient, "expiry": tok.Expiry})
	})
	_ = sessionManager.LoadAndSave(router)
}

func ExampleWithSkipper() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	router := gin.New()
	api := router.Group("/api", ginadapter.Middleware(refresher,
		ginadapter.WithSkipper(func(c *gin.Context) bool { return c.FullPath() == "/api/health" })))
	api.GET("/health", func(c *gin.Context) { c.Status(http.StatusOK) })
	_ = sessionManager.LoadAndSave(router)
}

// A browser app sends the user to launch again instead of answering 401,
// and keeps the default answer (with Retry-After) for the other errors. The
// middleware aborts the chain after the error handler.
func ExampleWithErrorHandler() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	router := gin.New()
	router.Use(ginadapter.Middleware(refresher, ginadapter.WithErrorHandler(func(c *gin.Context, err error) {
		if errors.Is(err, core.ErrReauthRequired) {
			c.Redirect(http.StatusFound, "/launch")
			return
		}
		c.Error(err)
		c.JSON(core.ErrorResponse(err)) // the default answer
	})))
	router.GET("/chart", func(c *gin.Context) { c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(router)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/chart", nil))
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output: 302 /launch
}

// Browser navigations that need a new authorization go to the launch page;
// API calls still get the JSON 401.
func ExampleWithLoginURL() {
	gin.SetMode(gin.ReleaseMode)
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	router := gin.New()
	router.GET("/chart", ginadapter.Middleware(refresher, ginadapter.WithLoginURL("/launch")),
		func(c *gin.Context) { c.String(http.StatusOK, "chart") })
	handler := sessionManager.LoadAndSave(router)

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
// JSON and aborts the chain.
func ExampleMiddleware_defaultAnswer() {
	gin.SetMode(gin.ReleaseMode)
	sessionManager := scs.New()
	router := gin.New()
	router.GET("/api/chart", ginadapter.Middleware(newRefresher(sessionManager)),
		func(c *gin.Context) { c.String(http.StatusOK, "chart") })
	rec := httptest.NewRecorder()
	sessionManager.LoadAndSave(router).ServeHTTP(rec, httptest.NewRequest("GET", "/api/chart", nil))
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output: 401 {"error":"reauth_required","error_description":"no token in session; launch or log in"}
}
