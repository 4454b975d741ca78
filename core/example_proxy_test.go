package core_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func ExampleRefresher_FHIRProxy() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()

	sessionManager := scs.New()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: sessionManager,
		FHIRBaseURLs: []string{srv.FHIRBaseURL}, // the proxy's upstream
	})
	if err != nil {
		log.Fatal(err)
	}
	proxy, err := r.FHIRProxy(core.ProxyConfig{Prefix: "/fhir/"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", proxy) // the browser reads /fhir/Patient/123; it never sees the token
	mux.HandleFunc("/callback", func(w http.ResponseWriter, req *http.Request) {
		r.Save(req.Context(), srv.Grant()) // as the app's launch callback does
	})
	app := httptest.NewServer(sessionManager.LoadAndSave(mux))
	defer app.Close()

	// The page's script: fetch("/fhir/Patient/123", {headers: {"X-CSRF": "1"}}).
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(app.URL + "/callback")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", app.URL+"/fhir/Patient/123", nil)
	req.Header.Set("X-CSRF", "1")
	resp, err = browser.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var patient struct {
		Name []struct{ Family string }
	}
	json.NewDecoder(resp.Body).Decode(&patient)
	fmt.Println(resp.Status, patient.Name[0].Family)
	// Output: 200 OK Shaw
}
