package core_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// twoPatients is a mock server whose EHR hands out patient A for launch
// "ehr-a" and patient B for launch "ehr-b".
var twoPatients = map[string]string{"ehr-a": "A", "ehr-b": "B"}

// ehrLaunch runs an EHR launch with the launch value launch in browser b
// and returns the launch id the callback named in its redirect.
func (a *launchApp) ehrLaunch(b *browser, launch string) string {
	a.t.Helper()
	res := a.login(b, "?iss="+url.QueryEscape(a.srv.FHIRBaseURL)+"&launch="+launch)
	if res.status != http.StatusSeeOther {
		a.t.Fatalf("callback: %d %s", res.status, res.body)
	}
	u, err := url.Parse(res.location)
	if err != nil {
		a.t.Fatal(err)
	}
	return u.Query().Get(core.LaunchParam)
}

// meIn returns the status and Info of GET /me naming launch id.
func (a *launchApp) meIn(b *browser, id string) (int, core.SessionInfo) {
	a.t.Helper()
	res := b.get(a.url+"/me", core.LaunchHeader, id)
	var info core.SessionInfo
	if res.status == http.StatusOK {
		if err := json.Unmarshal([]byte(res.body), &info); err != nil {
			a.t.Fatal(err)
		}
	}
	return res.status, info
}

// Tab 1 is launched from the EHR for patient A, tab 2 for patient B, in one
// browser session: each tab's requests, naming their launch, read their own
// patient. Before launches had ids, tab 1's next request read patient B.
func TestLaunchesTwoTabsTwoPatients(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
	b := newBrowser(t)
	tab1 := a.ehrLaunch(b, "ehr-a")
	tab2 := a.ehrLaunch(b, "ehr-b")
	if tab1 == "" || tab2 == "" || tab1 == tab2 {
		t.Errorf("the callbacks named launches %q and %q, want two different ids", tab1, tab2)
	}
	for _, c := range []struct{ tab, id, patient string }{{"tab 1", tab1, "A"}, {"tab 2", tab2, "B"}, {"tab 1 again", tab1, "A"}} {
		status, info := a.meIn(b, c.id)
		if status != http.StatusOK || info.Patient != c.patient {
			t.Errorf("%s: %d, patient %q; want patient %s", c.tab, status, info.Patient, c.patient)
		}
	}
}

// landing returns where a callback sent the browser, without the
// smart_launch parameter it must have added (a launch id of 128 bits or
// more, URL-safe) at the end of the query.
func landing(t testing.TB, location string) string {
	t.Helper()
	rest, id, ok := strings.Cut(location, core.LaunchParam+"=")
	if !ok || len(id) < 26 || strings.ContainsAny(id, "&#%+/=") {
		t.Errorf("callback redirect %q: want smart_launch=<launch id> at the end of the query", location)
		return location
	}
	return strings.TrimSuffix(strings.TrimSuffix(rest, "&"), "?")
}

// post sends POST u with the given header pairs and returns the answer.
func (b *browser) post(u string, header ...string) answer {
	b.t.Helper()
	req, err := http.NewRequest("POST", u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"), string(body)}
}

// read has launch id read its patient at the FHIR server (GET /read).
func (a *launchApp) read(b *browser, id string) answer {
	a.t.Helper()
	return b.get(a.url+"/read", core.LaunchHeader, id)
}

// A request naming a launch the session does not hold gets ErrLaunchGone
// (401 reauth_required), never another launch's token; one naming none
// gets the most recent launch; the query parameter names a launch as the
// header does.
func TestLaunchesNamedLaunch(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
	b := newBrowser(t)
	idA := a.ehrLaunch(b, "ehr-a")
	idB := a.ehrLaunch(b, "ehr-b")
	other := newBrowser(t)
	idOther := a.ehrLaunch(other, "ehr-a")

	for _, c := range []struct {
		name, url, header, patient string
		status                     int
	}{
		{"none named: the most recent", "/me", "", "B", 200},
		{"header", "/me", idA, "A", 200},
		{"query", "/me?" + core.LaunchParam + "=" + idA, "", "A", 200},
		{"header wins over query", "/me?" + core.LaunchParam + "=" + idB, idA, "A", 200},
		{"unknown id", "/me", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "", 401},
		{"another session's launch", "/me", idOther, "", 401},
		{"garbage", "/me", "../../etc", "", 401},
	} {
		var h []string
		if c.header != "" {
			h = []string{core.LaunchHeader, c.header}
		}
		res := b.get(a.url+c.url, h...)
		if res.status != c.status || c.status == 200 && !strings.Contains(res.body, `"patient":"`+c.patient+`"`) ||
			c.status == 401 && !strings.Contains(res.body, "launch again") {
			t.Errorf("%s: %d %s; want %d patient %q", c.name, res.status, res.body, c.status, c.patient)
		}
	}
	// In Go: ErrLaunchGone, which is ErrReauthRequired.
	ctx, err := a.sm.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx = core.WithLaunch(ctx, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if _, err := a.r.Token(ctx); !errors.Is(err, core.ErrLaunchGone) || !errors.Is(err, core.ErrReauthRequired) {
		t.Errorf("Token for a launch of an empty session: %v", err)
	}
	if n := a.srv.RefreshCalls(); n != 0 {
		t.Errorf("refresh calls = %d, want 0", n)
	}
}

// Two launches of one session, each hit by a storm of 100 concurrent
// requests once its token is due: one token call per launch, no refresh
// token sent twice, each launch keeps its own patient, and both new
// tokens are in the store.
func TestLaunchesStormPerLaunch(t *testing.T) {
	for _, idle := range []time.Duration{0, 30 * time.Minute} {
		t.Run("IdleTimeout="+idle.String(), func(t *testing.T) {
			a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
			a.sm.IdleTimeout = idle
			b := newBrowser(t)
			ids := map[string]string{"A": a.ehrLaunch(b, "ehr-a"), "B": a.ehrLaunch(b, "ehr-b")}
			exchanges := a.srv.TokenCalls()
			a.clock.Advance(time.Hour)
			const n = 100
			var wg sync.WaitGroup
			got := make(chan string, 2*n)
			for patient, id := range ids {
				for range n {
					wg.Go(func() {
						res := a.read(b, id)
						if res.status != http.StatusOK || res.body != patient {
							got <- fmt.Sprintf("launch of %s: %d %q", patient, res.status, res.body)
						}
					})
				}
			}
			wg.Wait()
			close(got)
			for e := range got {
				t.Error(e)
			}
			if c := a.srv.TokenCalls() - exchanges; c != 2 {
				t.Errorf("token calls = %d, want 2 (one per launch)", c)
			}
			if r := a.srv.Reuses(); r != 0 {
				t.Errorf("refresh token reuses = %d, want 0", r)
			}
			// Both refreshed tokens are what the session holds: the next
			// request of each launch reads its patient without a token call.
			for patient, id := range ids {
				status, info := a.meIn(b, id)
				if status != 200 || info.Patient != patient {
					t.Errorf("after the storm, launch of %s: %d %+v", patient, status, info)
				}
				if res := a.read(b, id); res.status != 200 || res.body != patient {
					t.Errorf("after the storm, reading as the launch of %s: %d %q", patient, res.status, res.body)
				}
			}
			if c := a.srv.TokenCalls() - exchanges; c != 2 {
				t.Errorf("token calls after the storm = %d, want 2", c)
			}
		})
	}
}

// Beyond MaxLaunches the least recently used launch is dropped, and with a
// RevocationURL exactly its grant is revoked; the page naming it gets
// ErrLaunchGone, the others keep working.
func TestLaunchesMaxLaunchesEvicts(t *testing.T) {
	for _, idle := range []time.Duration{0, 30 * time.Minute} {
		t.Run("IdleTimeout="+idle.String(), func(t *testing.T) { maxLaunchesEvicts(t, idle) })
	}
}

func maxLaunchesEvicts(t *testing.T, idle time.Duration) {
	patients := map[string]string{"l1": "P1", "l2": "P2", "l3": "P3"}
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: patients}, revoke: true,
		refresher: func(c *core.Config) { c.MaxLaunches = 2 }})
	a.sm.IdleTimeout = idle
	b := newBrowser(t)
	id1 := a.ehrLaunch(b, "l1")
	a.clock.Advance(10 * time.Minute)
	id2 := a.ehrLaunch(b, "l2")
	a.clock.Advance(10 * time.Minute)
	// Launch 1 is used again (after launchTouch): launch 2 is now the
	// least recently used.
	if res := a.read(b, id1); res.status != 200 {
		t.Fatalf("read as launch 1: %d %s", res.status, res.body)
	}
	a.clock.Advance(time.Minute)
	id3 := a.ehrLaunch(b, "l3")
	if g := a.srv.RevokedGrants(); g != 1 {
		t.Errorf("revoked grants = %d, want 1 (launch 2's)", g)
	}
	for _, c := range []struct {
		id, patient string
		status      int
	}{{id1, "P1", 200}, {id2, "", 401}, {id3, "P3", 200}} {
		res := a.read(b, c.id)
		if res.status != c.status || res.body != c.patient && c.status == 200 {
			t.Errorf("launch of %q: %d %q, want %d", c.patient, res.status, res.body, c.status)
		}
	}
	if r := a.srv.Reuses(); r != 0 {
		t.Errorf("reuses = %d", r)
	}
}

// A new launch for the same user and patient replaces its older twin,
// whose grant is revoked; a launch for another patient is kept.
func TestLaunchesTwinReplaced(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}, revoke: true})
	b := newBrowser(t)
	first := a.ehrLaunch(b, "ehr-a")
	idB := a.ehrLaunch(b, "ehr-b")
	second := a.ehrLaunch(b, "ehr-a")
	if g := a.srv.RevokedGrants(); g != 1 {
		t.Errorf("revoked grants = %d, want 1 (the first launch for A)", g)
	}
	if status, _ := a.meIn(b, first); status != http.StatusUnauthorized {
		t.Errorf("the replaced launch: %d, want 401", status)
	}
	for id, patient := range map[string]string{idB: "B", second: "A"} {
		if res := a.read(b, id); res.status != 200 || res.body != patient {
			t.Errorf("launch of %s: %d %q", patient, res.status, res.body)
		}
	}
}

// LogoutLaunch ends the launch the request names (its grant revoked), and
// the other launch keeps working; Logout ends every launch.
func TestLaunchesLogout(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: map[string]string{"l1": "P1", "l2": "P2", "l3": "P3"}}, revoke: true})
	b := newBrowser(t)
	id1, id2, id3 := a.ehrLaunch(b, "l1"), a.ehrLaunch(b, "l2"), a.ehrLaunch(b, "l3")
	if res := b.post(a.url+"/logout-launch", core.LaunchHeader, id2); res.status != 200 {
		t.Fatalf("logout of launch 2: %d %s", res.status, res.body)
	}
	if g := a.srv.RevokedGrants(); g != 1 {
		t.Errorf("revoked grants after LogoutLaunch = %d, want 1", g)
	}
	if status, _ := a.meIn(b, id2); status != http.StatusUnauthorized {
		t.Errorf("launch 2 after its logout: %d, want 401", status)
	}
	for id, p := range map[string]string{id1: "P1", id3: "P3"} {
		if res := a.read(b, id); res.status != 200 || res.body != p {
			t.Errorf("launch of %s after launch 2 logged out: %d %q", p, res.status, res.body)
		}
	}
	// Logging out a launch the session no longer holds does nothing.
	if res := b.post(a.url+"/logout-launch", core.LaunchHeader, id2); res.status != 200 || a.srv.RevokedGrants() != 1 {
		t.Errorf("second logout of launch 2: %d, revoked grants %d", res.status, a.srv.RevokedGrants())
	}
	if res := b.post(a.url + "/logout"); res.status != 200 {
		t.Fatalf("logout: %d %s", res.status, res.body)
	}
	if g := a.srv.RevokedGrants(); g != 3 {
		t.Errorf("revoked grants after Logout = %d, want 3", g)
	}
	for _, id := range []string{id1, id3, ""} {
		if status, _ := a.meIn(b, id); status != http.StatusUnauthorized {
			t.Errorf("launch %q after Logout: %d, want 401", id, status)
		}
	}
}

// A launch the user cancels at the authorization server (403
// access_denied) changes nothing: both tabs keep their patient.
func TestLaunchesCancelledLaunchChangesNothing(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
	b := newBrowser(t)
	idA, idB := a.ehrLaunch(b, "ehr-a"), a.ehrLaunch(b, "ehr-b")
	authz := a.launch(b, "?iss="+url.QueryEscape(a.srv.FHIRBaseURL)+"&launch=ehr-a")
	res := b.get(a.url + "/callback?error=access_denied&state=" + url.QueryEscape(authz.Query().Get("state")))
	if res.status != http.StatusForbidden {
		t.Fatalf("cancelled callback: %d", res.status)
	}
	for id, p := range map[string]string{idA: "A", idB: "B", "": "B"} {
		if status, info := a.meIn(b, id); status != 200 || info.Patient != p {
			t.Errorf("launch %q after a cancelled launch: %d %q, want %s", id, status, info.Patient, p)
		}
	}
}

// Save keeps its meaning: the session then holds that one login, the
// launches it replaced have their grants revoked (RevocationURL set), and
// it reads as it did before launches had ids. A later launch keeps it.
func TestLaunchesSaveReplacesLaunches(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}, revoke: true})
	b := newBrowser(t)
	idA, idB := a.ehrLaunch(b, "ehr-a"), a.ehrLaunch(b, "ehr-b")
	if res := b.post(a.url + "/save"); res.status != 200 {
		t.Fatalf("save: %d %s", res.status, res.body)
	}
	if g := a.srv.RevokedGrants(); g != 2 {
		t.Errorf("revoked grants after Save = %d, want 2", g)
	}
	for _, id := range []string{idA, idB} {
		if status, _ := a.meIn(b, id); status != http.StatusUnauthorized {
			t.Errorf("a replaced launch: %d, want 401", status)
		}
	}
	if status, info := a.meIn(b, ""); status != 200 || info.Patient != "123" || info.Launch != "" {
		t.Fatalf("after Save: %d %+v", status, info)
	}
	// A launch after Save: the saved login stays, as a launch of its own.
	idA2 := a.ehrLaunch(b, "ehr-a")
	if status, info := a.meIn(b, ""); status != 200 || info.Patient != "A" || info.Launch != idA2 {
		t.Errorf("the most recent launch: %d %+v", status, info)
	}
	if res := b.post(a.url+"/logout-launch", core.LaunchHeader, idA2); res.status != 200 {
		t.Fatalf("logout-launch: %d", res.status)
	}
	status, info := a.meIn(b, "")
	if status != 200 || info.Patient != "123" || info.Launch == "" {
		t.Errorf("the saved login after the newer launch's logout: %d %+v", status, info)
	}
	if res := a.read(b, info.Launch); res.status != 200 || res.body != "123" {
		t.Errorf("reading as the saved login: %d %q", res.status, res.body)
	}
	if n := a.srv.RefreshCalls(); n != 0 || a.srv.Reuses() != 0 {
		t.Errorf("refresh calls %d, reuses %d; want 0, 0", n, a.srv.Reuses())
	}
}

// The FHIR proxy sends the token of the launch the request names in
// X-SMART-Launch, never another's, and keeps the header to itself.
func TestLaunchesProxy(t *testing.T) {
	a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: twoPatients}})
	var (
		mu   sync.Mutex
		seen []string // Authorization, X-SMART-Launch of each FHIR request
	)
	a.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"), r.Header.Get(core.LaunchHeader))
		mu.Unlock()
		next.ServeHTTP(w, r)
	})
	last := func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-2], seen[len(seen)-1]
	}
	b := newBrowser(t)
	idA, idB := a.ehrLaunch(b, "ehr-a"), a.ehrLaunch(b, "ehr-b")
	tokens := map[string]string{}
	for _, id := range []string{idA, idB} {
		if res := a.read(b, id); res.status != 200 {
			t.Fatalf("read: %d", res.status)
		}
		tokens[id], _ = last()
	}
	for _, id := range []string{idA, idB, idA} {
		res := b.get(a.url+"/fhir/Patient/A", core.ProxyCSRFHeader, "1", core.LaunchHeader, id)
		auth, launch := last()
		if res.status != 200 || auth != tokens[id] || launch != "" {
			t.Errorf("proxy for launch %s: %d, its own token %v, X-SMART-Launch upstream %q", id, res.status, auth == tokens[id], launch)
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) / 2
	}
	before := count()
	res := b.get(a.url+"/fhir/Patient/A", core.ProxyCSRFHeader, "1", core.LaunchHeader, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if res.status != http.StatusUnauthorized || count() != before {
		t.Errorf("proxy for a launch not in the session: %d, %d upstream requests", res.status, count()-before)
	}
}

// ErrLaunchGone is a re-authorization everywhere: WriteError answers it
// 401 reauth_required, and the login URL takes a browser navigation to
// the launch page.
func TestLaunchGoneIsReauth(t *testing.T) {
	err := core.ErrLaunchGone
	if !errors.Is(err, core.ErrReauthRequired) {
		t.Fatal("ErrLaunchGone does not match ErrReauthRequired")
	}
	rec := httptest.NewRecorder()
	core.WriteError(rec, httptest.NewRequest("GET", "/api/me", nil), err)
	if status, body := core.ErrorResponse(err); rec.Code != 401 || status != 401 || body.Error != "reauth_required" {
		t.Errorf("WriteError: %d, ErrorResponse %d %+v", rec.Code, status, body)
	}
	nav := httptest.NewRequest("GET", "/chart?smart_launch=ABCDEFGHIJKLMNOPQRSTUVWXYZ", nil)
	nav.Header.Set("Sec-Fetch-Mode", "navigate")
	rec = httptest.NewRecorder()
	core.ErrorHandler("/launch", nil)(rec, nav, err)
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || loc != "/launch" && !strings.HasPrefix(loc, "/launch?return_to=") {
		t.Errorf("navigation: %d to %q, want 303 to /launch", rec.Code, loc)
	}
}
