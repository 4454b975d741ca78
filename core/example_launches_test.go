package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// Two tabs of one browser session, launched from the EHR for two
// patients: each request names its launch (the callback added
// smart_launch to the page it landed on; a page's fetch sends it as
// X-SMART-Launch), and gets its own patient. LogoutLaunch ends one launch;
// the other keeps working, and the ended one is ErrLaunchGone.
func ExampleRefresher_LogoutLaunch() {
	app := httptest.NewUnstartedServer(nil)
	appURL := "http://" + app.Listener.Addr().String()
	srv := smarttest.NewServer(smarttest.Options{
		RedirectURIs:   []string{appURL + "/callback"},
		LaunchPatients: map[string]string{"ehr-a": "A", "ehr-b": "B"}, // the EHR's patient per launch
	})
	defer srv.Close()
	sessions := scs.New()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: sessions, RevocationURL: srv.RevokeURL,
	})
	if err != nil {
		log.Fatal(err)
	}
	launcher, err := core.NewLauncher(r, core.LaunchConfig{
		RedirectURL: appURL + "/callback", Scope: "launch patient/*.read offline_access", FHIRBaseURL: srv.FHIRBaseURL,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /launch", launcher.LaunchHandler())
	mux.Handle("GET /callback", launcher.CallbackHandler())
	mux.HandleFunc("GET /patient", func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(core.LaunchContext(req)) // the launch req names
		if errors.Is(err, core.ErrLaunchGone) {
			io.WriteString(w, "this tab's launch has ended: launch again")
			return
		}
		fmt.Fprintf(w, "patient %s", info.Patient)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, req *http.Request) {
		r.LogoutLaunch(core.LaunchContext(req))
	})
	app.Config.Handler = sessions.LoadAndSave(mux)
	app.Start()
	defer app.Close()

	browser := smarttest.NewBrowser()
	launch := func(ehrLaunch string) string {
		landing, err := srv.Login(browser, appURL+"/launch?iss="+url.QueryEscape(srv.FHIRBaseURL)+"&launch="+ehrLaunch)
		if err != nil {
			log.Fatal(err)
		}
		u, _ := url.Parse(landing)
		return u.Query().Get(core.LaunchParam)
	}
	get := func(method, id string) string {
		req, _ := http.NewRequest(method, appURL+"/patient", nil)
		if method == "POST" {
			req.URL.Path = "/logout"
		}
		req.Header.Set(core.LaunchHeader, id)
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	tab1, tab2 := launch("ehr-a"), launch("ehr-b")
	fmt.Println("tab 1:", get("GET", tab1))
	fmt.Println("tab 2:", get("GET", tab2))
	get("POST", tab2)
	fmt.Println("tab 1:", get("GET", tab1))
	fmt.Println("tab 2:", get("GET", tab2))
	fmt.Println("revoked grants:", srv.RevokedGrants())
	// Output:
	// tab 1: patient A
	// tab 2: patient B
	// tab 1: patient A
	// tab 2: this tab's launch has ended: launch again
	// revoked grants: 1
}

// RequestLaunch reads the launch a request names: the X-SMART-Launch
// header of a page's fetch, or the smart_launch parameter of a link.
func ExampleRequestLaunch() {
	fetch := httptest.NewRequest("GET", "/api/patient", nil)
	fetch.Header.Set(core.LaunchHeader, "JZ4XAXGWXRRBXL3V6HYYBGS7UU")
	link := httptest.NewRequest("GET", "/chart?tab=labs&smart_launch=MZKHTSUZJ5VU2YBJ6QGH3X2NRA", nil)
	fmt.Println(core.RequestLaunch(fetch))
	fmt.Println(core.RequestLaunch(link))
	fmt.Printf("%q\n", core.RequestLaunch(httptest.NewRequest("GET", "/", nil)))
	// Output:
	// JZ4XAXGWXRRBXL3V6HYYBGS7UU
	// MZKHTSUZJ5VU2YBJ6QGH3X2NRA
	// ""
}

// WithLaunch names a launch for the Refresher's calls made outside a
// request (a background job of one tab's launch, say). A launch the
// session does not hold is ErrLaunchGone, which is ErrReauthRequired.
func ExampleWithLaunch() {
	sessions := scs.New()
	r, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "app", Sessions: sessions})
	if err != nil {
		log.Fatal(err)
	}
	ctx, _ := sessions.Load(context.Background(), "")
	_, err = r.Token(core.WithLaunch(ctx, "JZ4XAXGWXRRBXL3V6HYYBGS7UU"))
	fmt.Println(errors.Is(err, core.ErrLaunchGone), errors.Is(err, core.ErrReauthRequired))
	// Output: true true
}

// AttachRequest is what the middleware adapters call: the request's
// context then carries the token of the launch the request names.
func ExampleRefresher_AttachRequest() {
	sessions := scs.New()
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	r, err := core.New(core.Config{TokenURL: srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: sessions})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, req *http.Request) {
		r.Save(req.Context(), srv.Grant()) // a Launcher's callback, in a real app
	})
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, req *http.Request) {
		ctx, err := r.AttachRequest(req)
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		tok, _ := core.TokenFromContext(ctx)
		fmt.Fprintf(w, "patient %s", tok.Patient)
	})
	h := sessions.LoadAndSave(mux)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
	req := httptest.NewRequest("GET", "/api/me", nil)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Body.String())
	// Output: patient 123
}

// LaunchContext names, for the Refresher's calls in a handler, the launch
// the request names; a launch the session no longer holds is
// ErrLaunchGone, which the page answers by launching again.
func ExampleLaunchContext() {
	sessions := scs.New()
	r, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "app", Sessions: sessions})
	if err != nil {
		log.Fatal(err)
	}
	h := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, err := r.Info(core.LaunchContext(req))
		fmt.Fprint(w, errors.Is(err, core.ErrLaunchGone))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/chart?smart_launch=JZ4XAXGWXRRBXL3V6HYYBGS7UU", nil))
	fmt.Println(rec.Body.String())
	// Output: true
}
