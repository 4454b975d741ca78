package nethttpadapter_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
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

// The session manager's LoadAndSave wraps the whole handler; the middleware
// protects the API routes only. A request without a token gets the default
// 401 JSON answer.
func ExampleMiddleware() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	api := http.NewServeMux()
	api.HandleFunc("GET /api/patient", func(w http.ResponseWriter, req *http.Request) {
		// The Refresher's client sends the session's token and handles a
		// 401 of the FHIR server by refreshing once.
		resp, err := refresher.Client(req.Context()).Get("https://ehr.example.com/fhir/Patient/123")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		// ...
	})

	mux := http.NewServeMux()
	launcher := newLauncher(refresher)
	mux.Handle("GET /launch", launcher.LaunchHandler())     // EHR and standalone launch
	mux.Handle("GET /callback", launcher.CallbackHandler()) // exchanges the code, saves the token
	mux.Handle("/api/", nethttpadapter.Middleware(refresher)(api))
	handler := sessionManager.LoadAndSave(mux)
	// http.ListenAndServe(":8080", handler)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/patient", nil))
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), `"error":"reauth_required"`))
	// Output: 401 true
}

func ExampleToken() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	me := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok, ok := nethttpadapter.Token(req)
		if !ok {
			return // not behind the middleware
		}
		fmt.Fprintf(w, "patient %s, token valid until %s", tok.Patient, tok.Expiry)
	})
	http.Handle("/me", sessionManager.LoadAndSave(nethttpadapter.Middleware(refresher)(me)))
}

// Skipped requests reach the handler without a token.
func ExampleWithSkipper() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)

	protect := nethttpadapter.Middleware(refresher, nethttpadapter.WithSkipper(func(req *http.Request) bool {
		return req.URL.Path == "/api/health"
	}))
	handler := sessionManager.LoadAndSave(protect(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, ok := nethttpadapter.Token(req)
		fmt.Fprint(w, "token: ", ok)
	})))

	for _, path := range []string{"/api/health", "/api/patient"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code)
	}
	// Output:
	// /api/health 200
	// /api/patient 401
}

// A browser app sends the user to launch again instead of answering 401,
// and keeps the default answer for the other errors.
func ExampleWithErrorHandler() {
	sessionManager := scs.New()
	refresher := newRefresher(sessionManager)
	logger := log.New(os.Stderr, "", 0)

	protect := nethttpadapter.Middleware(refresher, nethttpadapter.WithErrorHandler(
		func(w http.ResponseWriter, req *http.Request, err error) {
			if errors.Is(err, core.ErrReauthRequired) {
				http.Redirect(w, req, "/launch", http.StatusFound)
				return
			}
			logger.Print(err)
			core.WriteError(w, req, err)
		}))
	handler := sessionManager.LoadAndSave(protect(http.NotFoundHandler()))

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

	chart := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { fmt.Fprint(w, "chart") })
	mux := http.NewServeMux()
	mux.Handle("GET /chart", nethttpadapter.Middleware(refresher, nethttpadapter.WithLoginURL("/launch"))(chart))
	handler := sessionManager.LoadAndSave(mux)

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
