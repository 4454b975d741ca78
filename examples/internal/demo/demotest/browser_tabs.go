package demotest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
)

// OtherPatientName is the name of the mock server's patient 456, whom the
// EHR launch "ehr-456" is for (demo.LaunchPatients).
const OtherPatientName = "Test Patient-456"

// TwoTabs drives the demo in two tabs of one headless Chromium (one
// session cookie), each launched from the EHR for another patient: tab 1
// for patient 123 (Amy V. Shaw), tab 2 for patient 456. Each tab keeps
// showing its own patient across reloads, a load of / without its launch,
// and a refresh of both tokens (one token call each, no reuse); logging
// out tab 2's launch leaves tab 1 working; and once tab 1's launch is
// dropped (a third tab launches for the same patient and user, which
// replaces it), tab 1 says "launch again" and never shows the other
// patient. It saves a screenshot of each step.
func TwoTabs(t *testing.T, name string, build func(*demo.App) http.Handler) {
	chrome, configured := chromium()
	if chrome == "" {
		t.Skip("browser test skipped: no chromium on the PATH (apt-get install chromium, or set SMARTREFRESH_CHROMIUM)")
	}
	e := Start(t, name, build)
	tab1, dir := startChrome(t, chrome, configured, name)
	tab2, cancel := chromedp.NewContext(tab1) // a second tab of the same browser
	defer cancel()
	step := func(tab any, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		switch tab {
		case 1:
			doStep(t, tab1, dir, what, actions...)
		case 2:
			doStep(t, tab2, dir, what, actions...)
		}
	}
	ehr := func(launch string) string {
		return e.URL + "/launch?iss=" + url.QueryEscape(e.Mock.FHIRBaseURL) + "&launch=" + launch
	}
	shows := func(patient, id string) []chromedp.Action[chromedp.Void] {
		return []chromedp.Action[chromedp.Void]{
			chromedp.WaitVisible(chromedp.ID("reload")),
			waitText("#patient-name", patient),
			waitText("#patient-id", id),
		}
	}
	step(1, "tab 1: EHR launch for patient 123", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(ehr("ehr-123"))},
		append(shows(PatientName, "123"), screenshot(dir, "1-tab1-patient-123.png"))...)...)
	step(2, "tab 2: EHR launch for patient 456", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(ehr("ehr-456"))},
		append(shows(OtherPatientName, "456"), screenshot(dir, "2-tab2-patient-456.png"))...)...)
	launch1 := tabLaunch(t, tab1)
	if launch2 := tabLaunch(t, tab2); launch1 == "" || launch2 == "" || launch1 == launch2 {
		t.Fatalf("the tabs keep launches %q and %q, want two ids", launch1, launch2)
	}

	// Tab 1 is reloaded, and loaded at / without its launch in the URL:
	// its sessionStorage names its launch.
	step(1, "tab 1: reload", append([]chromedp.Action[chromedp.Void]{chromedp.Reload()}, shows(PatientName, "123")...)...)
	step(1, "tab 1: open / without smart_launch", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(e.URL + "/")},
		append(shows(PatientName, "123"), screenshot(dir, "3-tab1-after-reloads.png"))...)...)

	// Both tokens expire; each tab's next load refreshes its own.
	e.Clock.Advance(TokenTTL + time.Second)
	for i, tab := range []struct {
		n           int
		patient, id string
	}{{1, PatientName, "123"}, {2, OtherPatientName, "456"}} {
		step(tab.n, "reload the data after the tokens expired", append([]chromedp.Action[chromedp.Void]{
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Evaluate[chromedp.Void](`document.getElementById("patient-name").textContent = ""`)(ctx, tg)
				return err
			}),
			chromedp.Click(chromedp.ID("reload")),
		}, append(shows(tab.patient, tab.id), waitText("#refreshes", "1"), screenshot(dir, fmt.Sprintf("%d-tab%d-refreshed.png", 4+i, tab.n)))...)...)
	}
	if got := e.Mock.RefreshCalls(); got != 2 {
		t.Errorf("refresh calls = %d, want 2 (one per launch)", got)
	}
	if e.Mock.Reuses() != 0 {
		t.Errorf("reuses = %d, want 0", e.Mock.Reuses())
	}

	// Tab 2 logs out of its launch; tab 1 keeps working.
	step(2, "tab 2: log out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/launch"]`)),
		screenshot(dir, "6-tab2-logged-out.png"),
	)
	if g := e.Mock.RevokedGrants(); g != 1 {
		t.Errorf("revoked grants after tab 2's logout = %d, want 1", g)
	}
	step(1, "tab 1 after tab 2 logged out", append([]chromedp.Action[chromedp.Void]{chromedp.Reload()},
		append(shows(PatientName, "123"), screenshot(dir, "7-tab1-still-working.png"))...)...)

	// A third tab launches for patient 123 again: the same user and
	// patient, so its launch replaces tab 1's, and tab 1 must launch again.
	tab3, cancel3 := chromedp.NewContext(tab1)
	defer cancel3()
	doStep(t, tab3, dir, "tab 3: EHR launch for patient 123 again", append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(ehr("ehr-123"))},
		shows(PatientName, "123")...)...)
	step(1, "tab 1 after its launch was dropped",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("launch-gone")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/launch"]`)),
		screenshot(dir, "8-tab1-launch-again.png"),
	)
	page, err := chromedp.Run(tab1, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "launch again") || strings.Contains(page, OtherPatientName) || strings.Contains(page, "456") ||
		strings.Contains(page, `id="patient-name"`) {
		t.Errorf("tab 1 after its launch was dropped says:\n%s", page)
	}
	e.AssertNoSecret("tab 1's page", page)
	t.Logf("screenshots in %s", dir)
}

// tabLaunch returns the launch id the tab keeps in sessionStorage.
func tabLaunch(t *testing.T, tab context.Context) string {
	t.Helper()
	id, err := chromedp.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("smart_launch") || ""`))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
