package coordtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// twoLaunches: one browser session holds two launches, for patients A and
// B, made by a Launcher on replica 0. At each of two expiries, 300
// requests naming either launch, spread over three replicas, make one
// token call per launch; each request gets its own launch's patient, and
// no refresh token goes out twice.
func twoLaunches(t *testing.T, b Backend) {
	app := httptest.NewUnstartedServer(nil)
	redirect := "http://" + app.Listener.Addr().String() + "/callback"
	c := newCluster(t, b)
	c.srv.Close()
	c.srv = smarttest.NewServer(smarttest.Options{Now: c.clock.Now, AccessTokenTTL: time.Hour, Logf: t.Logf,
		RedirectURIs: []string{redirect}, LaunchPatients: map[string]string{"ehr-a": "A", "ehr-b": "B"}})
	t.Cleanup(c.srv.Close)
	reps := []*replica{c.replica(), c.replica(), c.replica()}

	l, err := core.NewLauncher(reps[0].r, core.LaunchConfig{
		RedirectURL: redirect, Scope: "launch patient/*.read offline_access", FHIRBaseURL: c.srv.FHIRBaseURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /launch", l.LaunchHandler())
	mux.Handle("GET /callback", l.CallbackHandler())
	app.Config.Handler = reps[0].sm.LoadAndSave(mux)
	app.Start()
	t.Cleanup(app.Close)

	browser := smarttest.NewBrowser()
	patients := map[string]string{} // launch id → patient
	for _, launch := range []string{"ehr-a", "ehr-b"} {
		landing, err := c.srv.Login(browser, app.URL+"/launch?iss="+url.QueryEscape(c.srv.FHIRBaseURL)+"&launch="+launch)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(landing)
		patients[u.Query().Get(core.LaunchParam)] = map[string]string{"ehr-a": "A", "ehr-b": "B"}[launch]
	}
	if len(patients) != 2 {
		t.Fatalf("launch ids %v, want two", patients)
	}
	appURL, _ := url.Parse(app.URL)
	var session string
	for _, ck := range browser.Jar.Cookies(appURL) {
		if ck.Name == reps[0].sm.Cookie.Name {
			session = ck.Value
		}
	}

	c.slowTokenEndpoint(50 * time.Millisecond)
	for round := 1; round <= 2; round++ {
		c.dueSoon()
		seen := stormLaunches(t, reps, session, patients, 300)
		for id, toks := range seen {
			if len(toks) != 1 {
				t.Errorf("round %d: launch of %s got %d different access tokens, want 1", round, patients[id], len(toks))
			}
			for tok := range toks {
				for other, otoks := range seen {
					if other != id && otoks[tok] {
						t.Errorf("round %d: the launches of %s and %s got the same token", round, patients[id], patients[other])
					}
				}
			}
		}
		c.checkRefreshCalls(2 * round)
		c.checkNoReuse()
	}
}

// stormLaunches runs n concurrent requests of session, each naming one of
// the launches of patients in turn and spread over reps, which all load
// the session before any of them asks for the token. It returns the
// access tokens each launch's requests got.
func stormLaunches(t *testing.T, reps []*replica, session string, patients map[string]string, n int) map[string]map[string]bool {
	t.Helper()
	var ids []string
	seen := map[string]map[string]bool{}
	for id := range patients {
		ids = append(ids, id)
		seen[id] = map[string]bool{}
	}
	var (
		mu         sync.Mutex
		loaded, wg sync.WaitGroup
		start      = make(chan struct{})
	)
	loaded.Add(n)
	for i := range n {
		wg.Go(func() {
			rep, id := reps[i%len(reps)], ids[i%len(ids)]
			ctx, err := rep.sm.Load(context.Background(), session)
			loaded.Done()
			<-start
			if err != nil {
				t.Errorf("request %d: loading the session: %v", i, err)
				return
			}
			defer rep.end(ctx)
			tok, err := rep.r.Token(core.WithLaunch(ctx, id))
			if err != nil {
				t.Errorf("request %d on replica %d: %v", i, i%len(reps), err)
				return
			}
			if tok.Patient != patients[id] {
				t.Errorf("request %d for the launch of %s got patient %q", i, patients[id], tok.Patient)
			}
			mu.Lock()
			seen[id][tok.AccessToken] = true
			mu.Unlock()
		})
	}
	loaded.Wait()
	close(start)
	wg.Wait()
	return seen
}
