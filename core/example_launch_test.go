package core_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// An app with SMART App Launch: a Refresher, a Launcher on top of it, and
// the two routes. The test logs a browser in through the app's own /launch
// with smarttest's Login, then makes a FHIR call with the session's token.
func ExampleNewLauncher() {
	app := httptest.NewUnstartedServer(nil)
	appURL := "http://" + app.Listener.Addr().String()
	srv := smarttest.NewServer(smarttest.Options{ // a strict SMART server
		RedirectURIs: []string{appURL + "/callback"}, // the app's registered redirect URI
	})
	defer srv.Close()

	sessions := scs.New()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: sessions,
		FHIRBaseURLs: []string{srv.FHIRBaseURL},
	})
	if err != nil {
		log.Fatal(err)
	}
	launcher, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL: appURL + "/callback",
		Scope:       "launch/patient patient/*.read openid fhirUser offline_access",
		FHIRBaseURL: srv.FHIRBaseURL, // the authorize endpoint is discovered
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /launch", launcher.LaunchHandler())
	mux.Handle("GET /callback", launcher.CallbackHandler())
	mux.HandleFunc("GET /patient", func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		resp, err := r.Client(req.Context()).Get(srv.FHIRBaseURL + "/Patient/" + info.Patient)
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		defer resp.Body.Close()
		fmt.Fprintf(w, "FHIR server answered %d for Patient/%s", resp.StatusCode, info.Patient)
	})
	app.Config.Handler = sessions.LoadAndSave(mux)
	app.Start()
	defer app.Close()

	browser := smarttest.NewBrowser()
	landing, err := srv.Login(browser, appURL+"/launch?return_to=/patient")
	if err != nil {
		log.Fatal(err)
	}
	resp, err := browser.Get(landing)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: FHIR server answered 200 for Patient/123
}

func ExampleSafeReturnTo() {
	for _, s := range []string{"/patients/123?tab=labs", "//evil.example", "https://evil.example", "/\\evil.example"} {
		fmt.Println(s, core.SafeReturnTo(s))
	}
	// Output:
	// /patients/123?tab=labs true
	// //evil.example false
	// https://evil.example false
	// /\evil.example false
}

// An app's own answer to failed launches: its own page for
// session_missing, the default answer for the rest.
func ExampleWriteLaunchError() {
	cfg := core.LaunchConfig{
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, e *core.LaunchError) {
			if e.Code == "session_missing" {
				http.Redirect(w, req, "/open-in-new-window", http.StatusSeeOther)
				return
			}
			core.WriteLaunchError(w, req, e)
		},
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/callback?error=access_denied", nil)
	req.Header.Set("Accept", "application/json")
	cfg.ErrorHandler(rec, req, &core.LaunchError{Status: http.StatusForbidden, Code: "access_denied", Description: "the user said no"})
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 403 {"error":"access_denied","error_description":"the user said no"}
}

// The SMART launch context comes with the token: Patient and Encounter are
// fields, the rest are methods.
func ExampleToken_FHIRContext() {
	tok := &core.Token{
		AccessToken: "…", Patient: "123",
		Extra: map[string]any{
			"fhirContext":         []any{map[string]any{"reference": "DiagnosticReport/7", "role": "launch"}},
			"need_patient_banner": true,
			"intent":              "reconcile-medications",
			"smart_style_url":     "https://ehr.example/style.json",
			"tenant":              "hospital-a",
		},
	}
	for _, c := range tok.FHIRContext() {
		fmt.Println(c.Reference, c.Role)
	}
	fmt.Println(tok.NeedPatientBanner(), tok.Intent(), tok.SmartStyleURL(), tok.Tenant())
	// Output:
	// DiagnosticReport/7 launch
	// true reconcile-medications https://ehr.example/style.json hospital-a
}
