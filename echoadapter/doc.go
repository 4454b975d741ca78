// Package echoadapter is the Echo (github.com/labstack/echo/v4) middleware of
// smartrefresh: a thin translation of Echo's middleware idiom (a Config with
// a Skipper, MiddlewareWithConfig, and a Middleware shorthand) onto a
// *core.Refresher.
//
// Each request calls the Refresher's Attach on the request context. On
// success the request continues with that context, so Token returns a valid
// access token and the Refresher's Client calls the FHIR server on the
// session's behalf. On failure the error handler answers instead
// (core.WriteError by default: 401 JSON for core.ErrReauthRequired, 503 with
// Retry-After for core.ErrTransient, 500 otherwise) and the next handler
// does not run. The adapter holds no refresh logic; all of it lives in core.
//
// # Wiring
//
// The token lives in the scs session of the request, and scs commits the
// session (and writes its cookie) on the first Write or WriteHeader, so wrap
// the WHOLE Echo engine with the session manager's LoadAndSave and serve
// that, rather than starting Echo's own server:
//
//	sessionManager := scs.New()
//	refresher, err := core.New(core.Config{
//		TokenURL:     "https://ehr.example.com/oauth2/token",
//		ClientID:     "my-app",
//		ClientSecret: secret,
//		AuthMethod:   core.ClientSecretBasic,
//		Sessions:     sessionManager,
//	})
//	launcher, err := core.NewLauncher(refresher, core.LaunchConfig{
//		RedirectURL: "https://app.example.com/callback", // registered at the server
//		Scope:       "launch/patient patient/*.read openid fhirUser offline_access",
//		FHIRBaseURL: "https://ehr.example.com/fhir",
//	})
//	...
//	e := echo.New()
//	e.GET("/launch", echo.WrapHandler(launcher.LaunchHandler()))     // EHR and standalone launch
//	e.GET("/callback", echo.WrapHandler(launcher.CallbackHandler())) // exchanges the code, saves the token
//	api := e.Group("/api", echoadapter.Middleware(refresher))
//	api.GET("/patient", patient)
//
//	http.ListenAndServe(addr, sessionManager.LoadAndSave(e))
//
// e.Use(echoadapter.Middleware(refresher)) applies to every route, the
// launch and callback routes and unknown paths included; put the routes
// that need a token in a group, as above, or use a Skipper. Without
// LoadAndSave every protected request fails with core.ErrNoSession (a 500 by
// default).
//
// # Re-authorization in the browser
//
// With echoadapter.WithLoginURL("/launch"), a browser navigation (a GET or HEAD
// page load) that finds no usable token is redirected to the login or launch
// page, with the page it asked for as return_to so that the login comes back
// to it, instead of getting the JSON 401; API calls still get the JSON, and
// the login page itself is never redirected (core.ErrorHandler). With an
// error handler too, in either order, the login URL takes those
// navigations and the error handler answers everything else: the same rule
// in every adapter.
package echoadapter
