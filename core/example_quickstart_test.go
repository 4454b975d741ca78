package core_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// The quick start (examples/quickstart) as one program: a Refresher and a
// Launcher over a session manager, the launch and callback routes, and a
// page that reads the launch patient with the session's token, refreshed
// whenever it is due. Here the SMART server is core/smarttest and a test
// browser logs in through the app's own /launch.
func Example() {
	app := httptest.NewUnstartedServer(nil) // the app's address, known before it serves
	origin := "http://" + app.Listener.Addr().String()
	mock := smarttest.NewServer(smarttest.Options{RedirectURIs: []string{origin + "/callback"}})
	defer mock.Close()
	fhirBase := mock.FHIRBaseURL

	sessions := scs.New()
	r, err := core.New(core.Config{
		TokenURL:     mock.TokenURL,
		ClientID:     "smart-client",
		ClientSecret: "smart-secret",
		AuthMethod:   core.ClientSecretPost,
		Sessions:     sessions,
		FHIRBaseURLs: []string{fhirBase}, // the token goes nowhere else
	})
	if err != nil {
		log.Fatal(err)
	}
	launcher, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL:  origin + "/callback", // registered at the server, exactly
		Scope:        "launch/patient patient/*.read openid fhirUser offline_access",
		FHIRBaseURL:  fhirBase,
		AuthorizeURL: mock.AuthorizeURL,
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /launch", launcher.LaunchHandler())
	mux.Handle("GET /callback", launcher.CallbackHandler())
	needsLogin := nethttpadapter.Middleware(r, nethttpadapter.WithLoginURL("/launch"))
	mux.Handle("GET /{$}", needsLogin(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		resp, err := r.Client(req.Context()).Get(fhirBase + "/Patient/" + url.PathEscape(info.Patient))
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/fhir+json")
		io.Copy(w, resp.Body)
	})))
	app.Config.Handler = sessions.LoadAndSave(mux)
	app.Start()
	defer app.Close()

	browser := smarttest.NewBrowser()
	landing, err := mock.Login(browser, app.URL+"/launch")
	if err != nil {
		log.Fatal(err)
	}
	resp, err := browser.Get(landing)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var patient struct{ ResourceType, ID string }
	json.NewDecoder(resp.Body).Decode(&patient)
	// The callback names the new launch in the page it lands on.
	fmt.Println(strings.HasPrefix(landing, app.URL+"/?"+core.LaunchParam+"="), resp.StatusCode, patient.ResourceType, patient.ID)
	// Output: true 200 Patient 123
}
