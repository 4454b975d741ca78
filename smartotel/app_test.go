package smartotel_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// app is a net/http app with a Refresher at a smarttest server, on a
// clock the test advances, and one user whose session holds a grant.
type app struct {
	srv     *smarttest.Server
	clock   *smarttest.Clock
	r       *core.Refresher
	web     *httptest.Server
	browser *http.Client
}

// newApp starts the app with cfg (its token endpoint, client and sessions
// filled in) and logs its user in.
func newApp(cfg core.Config) (*app, error) {
	a := &app{clock: smarttest.NewClock(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))}
	a.srv = smarttest.NewServer(smarttest.Options{Now: a.clock.Now, AccessTokenTTL: time.Hour})
	o := a.srv.Options()
	sm := scs.New()
	cfg.TokenURL, cfg.ClientID, cfg.ClientSecret, cfg.AuthMethod = a.srv.TokenURL, o.ClientID, o.ClientSecret, o.AuthMethod
	cfg.Sessions, cfg.Now = sm, a.clock.Now
	var err error
	if a.r, err = core.New(cfg); err != nil {
		a.srv.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, req *http.Request) {
		if err := a.r.Save(req.Context(), a.srv.Grant()); err != nil {
			core.WriteError(w, req, err)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if _, err := a.r.Token(req.Context()); err != nil {
			core.WriteError(w, req, err)
			return
		}
		io.WriteString(w, "ok")
	})
	a.web = httptest.NewServer(sm.LoadAndSave(mux))
	jar, _ := cookiejar.New(nil)
	a.browser = &http.Client{Jar: jar}
	if code := a.get("/login"); code != http.StatusOK {
		a.close()
		return nil, fmt.Errorf("login: %d", code)
	}
	return a, nil
}

// get asks the app for path in the user's session and returns the status.
func (a *app) get(path string) int {
	resp, err := a.browser.Get(a.web.URL + path)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// storm makes n requests of the user's at once.
func (a *app) storm(n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { a.get("/") })
	}
	wg.Wait()
}

func (a *app) close() {
	a.web.Close()
	a.srv.Close()
}
