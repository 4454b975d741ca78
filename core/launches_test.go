package core_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
