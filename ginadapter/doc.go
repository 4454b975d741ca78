// Package ginadapter is the Gin (github.com/gin-gonic/gin) middleware of
// smartrefresh: a thin translation of the gin-contrib idiom (New(Config)
// returning a gin.HandlerFunc) onto a *core.Refresher.
//
// Each request calls the Refresher's Attach on the request context. On
// success the middleware sets c.Request to a copy carrying that context and
// calls c.Next, so Token returns a valid access token and the Refresher's
// Client calls the FHIR server on the session's behalf. On failure the
// error handler answers (core.WriteError by default: 401 JSON for
// core.ErrReauthRequired, 503 with Retry-After for core.ErrTransient, 500
// otherwise) and the chain is aborted, whatever the handler did: the
// protected handlers never run without a token. The adapter holds no refresh
// logic; all of it lives in core.
//
// # Wiring
//
// The token lives in the scs session of the request, so wrap the WHOLE Gin
// engine with the session manager's LoadAndSave and serve that:
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
//	router := gin.New()
//	router.GET("/launch", gin.WrapH(launcher.LaunchHandler()))     // EHR and standalone launch
//	router.GET("/callback", gin.WrapH(launcher.CallbackHandler())) // exchanges the code, saves the token
//	api := router.Group("/api", ginadapter.Middleware(refresher))
//	api.GET("/patient", patient)
//
//	http.ListenAndServe(addr, sessionManager.LoadAndSave(router))
//
// Do not adapt LoadAndSave into a Gin middleware for single routes or
// groups: scs commits the session and adds its cookie on the first Write or
// WriteHeader of the writer it passes on, but Gin handlers write to
// c.Writer, so such a wrapper commits only after the headers went out and
// the cookie is lost. router.Run cannot serve the wrapped engine; use
// http.ListenAndServe or an http.Server. Without LoadAndSave every protected
// request fails with core.ErrNoSession (a 500 by default).
//
// # Re-authorization in the browser
//
// With ginadapter.WithLoginURL("/launch"), a browser navigation (a GET or HEAD
// page load) that finds no usable token is redirected to the login or launch
// page, with the page it asked for as return_to so that the login comes back
// to it, instead of getting the JSON 401; API calls still get the JSON, and
// the login page itself is never redirected (core.ErrorHandler). With an
// error handler too, in either order, the login URL takes those
// navigations and the error handler answers everything else: the same rule
// in every adapter.
package ginadapter
