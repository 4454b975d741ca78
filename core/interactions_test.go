package core_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// sameValuesHook makes the mock server answer every code exchange after
// the first with the first one's access and refresh token, as servers
// that hand a new login of the same user and client the same token values
// do (Spring Security OAuth2's default token services): two launches of
// one session then hold one grant's tokens, for two patients.
func sameValuesHook(t *testing.T, srv *smarttest.Server) {
	var (
		mu    sync.Mutex
		first map[string]any
	)
	srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form.Get("grant_type") != "authorization_code" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var ans map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &ans) != nil {
			t.Errorf("code exchange: %d %s", rec.Code, rec.Body)
			return
		}
		mu.Lock()
		if first == nil {
			first = ans
		} else {
			ans["access_token"], ans["refresh_token"] = first["access_token"], first["refresh_token"]
		}
		mu.Unlock()
		b, _ := json.Marshal(ans)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
}

// Two launches of one session, for patients A and B, whose server handed
// both the same token values: a refresh of one must not give the other
// launch its patient. Before, tab 2 read patient A once tab 1 had
// refreshed the shared refresh token (the ledger handed tab 2 tab 1's
// newest record, launch context and all).
func TestInteractionSharedValuesKeepEachLaunchsPatient(t *testing.T) {
	for _, first := range []string{"tab 1 refreshes first", "both at once"} {
		t.Run(first, func(t *testing.T) {
			a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
			sameValuesHook(t, a.srv)
			b := newBrowser(t)
			tab1 := a.ehrLaunch(b, "ehr-a")
			tab2 := a.ehrLaunch(b, "ehr-b")
			a.clock.Advance(2 * time.Hour)
			if first == "both at once" {
				var wg sync.WaitGroup
				for range 20 {
					for _, id := range []string{tab1, tab2} {
						wg.Go(func() { a.read(b, id) })
					}
				}
				wg.Wait()
			} else if res := a.read(b, tab1); res.status != 200 || res.body != "A" {
				t.Fatalf("tab 1 read: %d %q", res.status, res.body)
			}
			for round := range 3 { // each round, tab 1's refresh gives tab 2 the grant's newer token
				for _, c := range []struct{ tab, id, patient string }{{"tab 2", tab2, "B"}, {"tab 1", tab1, "A"}, {"tab 2 again", tab2, "B"}} {
					if res := a.read(b, c.id); res.status != 200 || res.body != c.patient {
						t.Errorf("round %d, %s read: %d %q, want patient %s", round, c.tab, res.status, res.body, c.patient)
					}
					if status, info := a.meIn(b, c.id); status != 200 || info.Patient != c.patient {
						t.Errorf("round %d, %s Info: %d patient %q, want %s", round, c.tab, status, info.Patient, c.patient)
					}
				}
				a.clock.Advance(2 * time.Hour)
				if res := a.read(b, tab1); res.status != 200 || res.body != "A" {
					t.Fatalf("round %d, tab 1's refresh: %d %q", round, res.status, res.body)
				}
			}
			if r := a.srv.Reuses(); r != 0 {
				t.Errorf("reuses = %d, want 0", r)
			}
		})
	}
}

// LogoutLaunch of one of two launches whose server handed both the same
// token values ends that launch only: revoking those values at the server
// (or in the ledger) would end the other launch too, the "wrong grant".
// Before, the other tab's next read was 401 (its grant revoked).
func TestInteractionSharedValuesLogoutLaunchKeepsTheOther(t *testing.T) {
	for _, refreshed := range []bool{false, true} {
		t.Run("refreshed="+strconv.FormatBool(refreshed), func(t *testing.T) {
			a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}, revoke: true})
			sameValuesHook(t, a.srv)
			b := newBrowser(t)
			tab1 := a.ehrLaunch(b, "ehr-a")
			tab2 := a.ehrLaunch(b, "ehr-b")
			if refreshed {
				a.clock.Advance(2 * time.Hour)
				if res := a.read(b, tab1); res.status != 200 {
					t.Fatalf("tab 1 read: %d %q", res.status, res.body)
				}
			}
			if res := b.post(a.url+"/logout-launch", "X-SMART-Launch", tab2); res.status != 200 {
				t.Fatalf("logout of tab 2: %d %s", res.status, res.body)
			}
			if res := a.read(b, tab2); res.status != 401 {
				t.Errorf("tab 2 after its logout: %d, want 401", res.status)
			}
			a.clock.Advance(2 * time.Hour)
			if res := a.read(b, tab1); res.status != 200 || res.body != "A" {
				t.Errorf("tab 1 after tab 2's logout: %d %q, want 200 A", res.status, res.body)
			}
			if r := a.srv.Reuses(); r != 0 {
				t.Errorf("reuses = %d, want 0", r)
			}
		})
	}
}

// The answer to replica 0's refresh is lost at a server with a reuse grace
// window: its prompt resend (Config.ResendAfter) happens inside its claim,
// and replica 1, asked for the same session's token meanwhile, waits for
// the resend's record instead of sending the refresh token a third time.
func TestInteractionResendInsideClaim(t *testing.T) {
	rep := newReplicas(t, 2, newMemCoordinator(), smarttest.Options{ReuseGraceWindow: 30 * time.Second})
	session, _ := rep.login()
	var calls atomic.Int32
	rep.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) == 1 {
			lose(reset)(w, r, next)
			return
		}
		next.ServeHTTP(w, r)
	})
	rep.clock.Advance(time.Hour)
	var (
		wg   sync.WaitGroup
		errs [2]error
		toks [2]*core.Token
	)
	var took [2]time.Duration
	start := time.Now()
	wg.Go(func() { toks[0], errs[0] = rep.token(0, session); took[0] = time.Since(start) })
	time.Sleep(300 * time.Millisecond) // replica 0's first call is answered (lost) by now
	wg.Go(func() { toks[1], errs[1] = rep.token(1, session); took[1] = time.Since(start) })
	wg.Wait()
	t.Logf("replica 0 took %v, replica 1 %v", took[0], took[1])
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if toks[0] != nil && toks[1] != nil && toks[0].AccessToken != toks[1].AccessToken {
		t.Errorf("the replicas got different tokens")
	}
	if c, g, u, rv := rep.srv.RefreshCalls(), rep.srv.GraceResends(), rep.srv.Reuses(), rep.srv.RevokedGrants(); c != 2 || g != 1 || rv != 0 {
		t.Errorf("refresh calls %d, grace resends %d, reuses %d, revoked grants %d; want 2, 1, -, 0", c, g, u, rv)
	}
}

// A page that names its launch in the proxy request's query (smart_launch,
// which the proxy reads as it reads X-SMART-Launch) gets its launch's
// token, and the FHIR server gets the page's search without the app's own
// parameter: a server that refuses unknown search parameters (Prefer:
// handling=strict, or by policy) would fail every such search, and the
// launch id has no business in the FHIR server's logs and Bundle links.
// Every other byte of the query is forwarded as it came. Before, the
// upstream got smart_launch=<id>.
func TestInteractionProxyStripsLaunchParam(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
	var (
		mu    sync.Mutex
		query string
		auth  string
	)
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		query, auth = r.URL.RawQuery, r.Header.Get("Authorization")
		mu.Unlock()
		next.ServeHTTP(w, r)
	})
	b := newBrowser(t)
	idA := a.ehrLaunch(b, "ehr-a")
	a.ehrLaunch(b, "ehr-b") // the most recent launch: a request naming none would get B
	if res := a.read(b, idA); res.status != 200 {
		t.Fatalf("read: %d", res.status)
	}
	mu.Lock()
	tokenA := auth
	mu.Unlock()
	for _, c := range []struct{ in, want string }{
		{"name=Smith&" + core.LaunchParam + "=" + idA, "name=Smith"},
		{core.LaunchParam + "=" + idA + "&name=Smith", "name=Smith"},
		{"name=a%2Cb&x=;y&" + core.LaunchParam + "=" + idA + "&_count=2", "name=a%2Cb&x=;y&_count=2"},
		{"smart%5Flaunch=" + idA + "&name=S", "name=S"},
		{core.LaunchParam + "=" + idA, ""},
	} {
		res := b.get(a.url+"/fhir/Patient?"+c.in, core.ProxyCSRFHeader, "1")
		mu.Lock()
		q, got := query, auth
		mu.Unlock()
		if res.status != 200 || q != c.want || got != tokenA {
			t.Errorf("?%s: %d, upstream query %q (want %q), launch A's token %v", c.in, res.status, q, c.want, got == tokenA)
		}
	}
}

// A launch evicted (MaxLaunches) while its refresh is in flight stays
// evicted: the refresh's result is not written back into the session, and
// the grant, whose newest token the flight produced, is revoked; the new
// launch works.
func TestInteractionEvictedDuringRefresh(t *testing.T) {
	evictedDuringRefresh(t, 0)
}

func evictedDuringRefresh(t *testing.T, idle time.Duration) {
	patients := map[string]string{"l1": "P1", "l2": "P2"}
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: patients}, revoke: true,
		refresher: func(c *core.Config) { c.MaxLaunches = 1 }})
	a.sm.IdleTimeout = idle
	b := newBrowser(t)
	id1 := a.ehrLaunch(b, "l1")
	a.clock.Advance(2 * time.Hour)
	started := make(chan struct{})
	var once sync.Once
	a.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, _ := url.ParseQuery(string(body)); form.Get("grant_type") == "refresh_token" {
			once.Do(func() { close(started) })
			time.Sleep(500 * time.Millisecond)
		}
		next.ServeHTTP(w, r)
	})
	done := make(chan answer)
	go func() { done <- a.read(b, id1) }()
	<-started
	id2 := a.ehrLaunch(b, "l2")
	<-done
	if res := a.read(b, id1); res.status != http.StatusUnauthorized {
		t.Errorf("evicted launch 1 after its refresh: %d %q, want 401", res.status, res.body)
	}
	if res := a.read(b, id2); res.status != 200 || res.body != "P2" {
		t.Errorf("launch 2: %d %q", res.status, res.body)
	}
	if g, r := a.srv.RevokedGrants(), a.srv.Reuses(); g != 1 || r != 0 {
		t.Errorf("revoked grants %d, reuses %d; want 1, 0", g, r)
	}
}

// OPEN DEFECT (found by this attack, not fixed): with IdleTimeout set (scs
// then commits every request's copy), a request of launch 1 in flight
// while launch 2 completes commits its copy, loaded before launch 2, under
// the session token launch 2 renewed away, and sets that old cookie: the
// browser is back in the session without launch 2, whose tab then gets
// ErrLaunchGone: a tab that polls loses every other tab's launch that
// completes meanwhile. Set
// SMARTREFRESH_OPEN_DEFECTS=1 to run it.
func TestInteractionLaunchLostToConcurrentCommit(t *testing.T) {
	if os.Getenv("SMARTREFRESH_OPEN_DEFECTS") == "" {
		t.Skip("open defect: a request in flight during a launch commits the pre-launch session (set SMARTREFRESH_OPEN_DEFECTS=1)")
	}
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: map[string]string{"l1": "P1", "l2": "P2"}}})
	b := newBrowser(t)
	id1 := a.ehrLaunch(b, "l1")
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		once.Do(func() { close(started); <-release })
		next.ServeHTTP(w, r)
	})
	done := make(chan answer)
	go func() { done <- a.read(b, id1) }() // tab 1's request, in flight
	<-started
	id2 := a.ehrLaunch(b, "l2") // tab 2's launch completes meanwhile
	close(release)
	<-done
	for _, c := range []struct{ id, patient string }{{id1, "P1"}, {id2, "P2"}} {
		if res := a.read(b, c.id); res.status != 200 || res.body != c.patient {
			t.Errorf("launch of %s after tab 1's request: %d %q", c.patient, res.status, res.body)
		}
	}
}
