// Package nethttpadapter is the net/http middleware of smartrefresh: a thin
// translation of the standard handler idiom onto a *core.Refresher.
//
// Each request calls the Refresher's Attach on the request context. On
// success the next handler runs with that context, so Token (or
// core.TokenFromContext) returns a valid access token and the Refresher's
// Client calls the FHIR server on the session's behalf. On failure the error
// handler answers instead (core.WriteError by default: 401 JSON for
// core.ErrReauthRequired, 503 with Retry-After for core.ErrTransient, 500
// otherwise) and the next handler does not run. The adapter holds no
// refresh logic; all of it lives in core.
//
// # Wiring
//
// The token lives in the scs session of the request, so the session manager's
// LoadAndSave must run before the middleware. Wrap the whole handler, outside
// the middleware:
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
//	api := http.NewServeMux() // routes that need a token
//	api.HandleFunc("GET /api/patient", patientHandler)
//
//	mux := http.NewServeMux()
//	mux.Handle("GET /launch", launcher.LaunchHandler())     // EHR and standalone launch
//	mux.Handle("GET /callback", launcher.CallbackHandler()) // exchanges the code, saves the token
//	mux.Handle("/api/", nethttpadapter.Middleware(refresher)(api))
//
//	http.ListenAndServe(addr, sessionManager.LoadAndSave(mux))
//
// Without LoadAndSave every protected request fails with core.ErrNoSession
// (a 500 by default).
//
// # Re-authorization in the browser
//
// With nethttpadapter.WithLoginURL("/launch"), a browser navigation (a GET or HEAD
// page load) that finds no usable token is redirected to the login or launch
// page, with the page it asked for as return_to so that the login comes back
// to it, instead of getting the JSON 401; API calls still get the JSON, and
// the login page itself is never redirected (core.ErrorHandler). With an
// error handler too, in either order, the login URL takes those
// navigations and the error handler answers everything else: the same rule
// in every adapter.
package nethttpadapter
