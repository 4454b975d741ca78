package demotest

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
	"github.com/smartrefresh/smartrefresh/internal/services"
)

// chromium returns the browser to drive: $SMARTREFRESH_CHROMIUM, or
// Debian's chromium (or a Chrome) on the PATH. configured is true when the
// environment named it, so that a broken browser fails the test instead of
// skipping it.
func chromium() (path string, configured bool) {
	if p := os.Getenv("SMARTREFRESH_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, false
		}
	}
	return "", false
}

// ArtifactsDir is where Browser saves its screenshots:
// $SMARTREFRESH_ARTIFACTS, or smartrefresh-artifacts in the temporary
// directory.
func ArtifactsDir() string {
	if d := os.Getenv("SMARTREFRESH_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "smartrefresh-artifacts")
}

// Browser drives the demo in a real headless Chromium, as a person would:
// open it, click Launch, see the patient's name that the page's script
// loaded through the FHIR proxy, let the access token expire, reload the
// data and see the refresh counter go up (one refresh, no reuse), log out
// and see the logged-out page. It saves a screenshot of each step.
func Browser(t *testing.T, name string, build func(*demo.App) http.Handler) {
	chrome, configured := chromium()
	if chrome == "" {
		services.Missing(t, "browser test skipped: no chromium on the PATH (apt-get install chromium, or set SMARTREFRESH_CHROMIUM)")
	}
	e := Start(t, name, build)
	ctx, dir := startChrome(t, chrome, configured, name)
	shot := func(file string) chromedp.Action[chromedp.Void] { return screenshot(dir, file) }
	text := waitText
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		doStep(t, ctx, dir, what, actions...)
	}

	fhirCalls := e.Mock.FHIRCalls()
	step("open the demo and launch",
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/launch"]`)),
		shot("1-logged-out.png"),
		chromedp.Click(chromedp.CSS(`a[href="/launch"]`)),
		chromedp.WaitVisible(chromedp.ID("reload")), // the patient page has loaded
		text("#patient-name", PatientName),
		text("#user-name", PatientName+" (Patient)"), // the mock's user is the patient
		text("#refreshes", "0"),
		text("#last-refresh", "none yet"),
		shot("2-patient.png"),
	)
	if e.Mock.FHIRCalls() == fhirCalls {
		t.Error("the page showed the patient without a FHIR call")
	}

	// The access token becomes due (a quarter of its 30 s lifetime before
	// its expiry): the page's next FHIR call, which it makes by itself at
	// that moment (here: the Reload button, the same call), goes through
	// the proxy, which refreshes the token BEFORE it expires, and the page
	// shows the new expiry and the refresh.
	before, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("expires-at").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(TokenTTL*3/4 + time.Second)
	step("reload the data once the token is due, before it expires",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`document.getElementById("patient-name").textContent = ""`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.ID("reload")),
		text("#patient-name", PatientName),
		text("#refreshes", "1"),
		chromedp.Poll[chromedp.Void](`/refresh token rotated, [1-7]\.[0-9] s before the old token expired$/.test(document.getElementById("last-refresh").textContent)`,
			chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Poll[chromedp.Void](`document.getElementById("expires-at").textContent !== `+quote(before),
			chromedp.WithPollingTimeout(20*time.Second)),
		shot("3-refreshed-before-expiry.png"),
	)
	if got := e.Mock.RefreshCalls(); got != 1 {
		t.Errorf("refresh calls = %d, want 1", got)
	}

	// Without a click: a page opened 2 s before the token is due plans a
	// FHIR call for that moment, and shows the refresh it causes, made
	// before the expiry. (The test's clock moves only when told: it moves
	// past the due time once the page has planned its call.)
	e.Clock.Advance(TokenTTL*3/4 - 2*time.Second)
	step("the page refreshes by itself once the token is due",
		chromedp.Navigate(e.URL+"/"),
		text("#patient-name", PatientName),
		text("#refreshes", "1"),
		chromedp.Poll[chromedp.Void](`/rotated$/.test(document.getElementById("last-refresh").textContent)`, // /api/token has answered
			chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Func(func(context.Context, *chromedp.Target) error {
			e.Clock.Advance(2*time.Second + 100*time.Millisecond)
			return nil
		}),
		chromedp.Poll[chromedp.Void](`document.getElementById("refreshes").textContent === "2" && /refresh token rotated, [1-7]\.[0-9] s before the old token expired$/.test(document.getElementById("last-refresh").textContent)`,
			chromedp.WithPollingTimeout(20*time.Second)),
		shot("4-refreshed-by-itself.png"),
	)
	if got := e.Mock.RefreshCalls(); got != 2 {
		t.Errorf("refresh calls = %d, want 2", got)
	}
	if e.Mock.Reuses() != 0 || e.Mock.RevokedGrants() != 0 {
		t.Errorf("reuses %d, revoked grants %d, want none", e.Mock.Reuses(), e.Mock.RevokedGrants())
	}

	step("log out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/launch"]`)),
		shot("5-logged-out-again.png"),
	)
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, "Not logged in") {
		t.Errorf("after Log out the page says:\n%s", page)
	}
	e.AssertNoSecret("the page", page)
	t.Logf("screenshots in %s", dir)
}

// startChrome starts a headless Chromium for the test and returns the
// context of its first tab, and the test's screenshot folder (one per
// framework and test: the three demos' tests share a name).
func startChrome(t *testing.T, chrome string, configured bool, name string) (context.Context, string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		if configured {
			t.Fatalf("starting $SMARTREFRESH_CHROMIUM %s: %v", chrome, err)
		}
		t.Fatalf("starting %s (found on the PATH): %v", chrome, err)
	}
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	dir := filepath.Join(ArtifactsDir(), strings.NewReplacer("/", "_", " ", "_").Replace(name+"_"+t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return ctx, dir
}

// screenshot saves a screenshot of the tab as dir/file.
func screenshot(dir, file string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, file), png, 0o644)
	})
}

// waitText waits until the element's text is want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`(document.querySelector(`+quote(sel)+`) || {}).textContent === `+quote(want),
		chromedp.WithPollingTimeout(20*time.Second))
}

// doStep runs actions in the tab of ctx, failing the test with the page's
// text and a screenshot (failed.png) if one fails.
func doStep(t *testing.T, ctx context.Context, dir, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		chromedp.Do(ctx, screenshot(dir, "failed.png"))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// quote returns s as a JavaScript string literal.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
