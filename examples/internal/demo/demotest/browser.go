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
		t.Skip("browser test skipped: no chromium on the PATH (apt-get install chromium, or set SMARTREFRESH_CHROMIUM)")
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
		text("#refreshes", "0"),
		shot("2-patient.png"),
	)
	if e.Mock.FHIRCalls() == fhirCalls {
		t.Error("the page showed the patient without a FHIR call")
	}

	// The access token expires; the page's next load goes through the
	// proxy, which refreshes the token first.
	e.Clock.Advance(TokenTTL + time.Second)
	step("reload the data after the token expired",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`document.getElementById("patient-name").textContent = ""`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.ID("reload")),
		text("#patient-name", PatientName),
		text("#refreshes", "1"),
		shot("3-refreshed.png"),
	)
	if got := e.Mock.RefreshCalls(); got != 1 {
		t.Errorf("refresh calls = %d, want 1", got)
	}
	if e.Mock.Reuses() != 0 || e.Mock.RevokedGrants() != 0 {
		t.Errorf("reuses %d, revoked grants %d, want none", e.Mock.Reuses(), e.Mock.RevokedGrants())
	}

	step("log out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/launch"]`)),
		shot("4-logged-out-again.png"),
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
