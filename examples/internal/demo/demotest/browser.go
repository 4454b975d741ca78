package demotest

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
// and see the logged-out page. It saves a screenshot of each step. On the
// way it tries the cached-navigation attack (see cachedNavigation).
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

	cachedNavigation(t, e, ctx, step, shot)

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
	// A later call that finds the same token keeps saying what the refresh
	// was (under load, the page's own timer made such a call and the
	// note vanished).
	step("reload again: the page still says the refresh came before the expiry",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`document.getElementById("last-refresh").textContent = ""`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.ID("reload")),
		chromedp.Poll[chromedp.Void](`/refresh token rotated, [1-7]\.[0-9] s before the old token expired$/.test(document.getElementById("last-refresh").textContent)`,
			chromedp.WithPollingTimeout(20*time.Second)),
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

// cachedNavigation tries a stored XSS through the browser's cache: the FHIR
// server (hostile, or storing what a user uploaded) serves a Binary as
// text/html with "Cache-Control: private, max-age=600" and a script that
// reads the patient through the proxy. The page fetches it once, as a page
// does (with X-CSRF); then a plain navigation (typed, or a link in a mail)
// opens the same URL. Were the answer cached and rendered, the script
// would run on the app's origin, past the X-CSRF check. It must not: the
// title must not change and the FHIR server must see no read of the
// patient from it.
func cachedNavigation(t *testing.T, e *Env, ctx context.Context, step func(string, ...chromedp.Action[chromedp.Void]), shot func(string) chromedp.Action[chromedp.Void]) {
	t.Helper()
	patient := "Patient/" + e.Mock.Options().Patient
	var mu sync.Mutex
	stolen := 0
	e.Mock.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/Binary/evil"):
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Cache-Control", "private, max-age=600")
			io.WriteString(w, `<html><head><title>binary</title></head><body><script>`+
				`document.title = "pwned";`+
				`fetch("`+demo.ProxyPrefix+patient+`?stolen=1", {headers: {"X-CSRF": "1"}}).then(r => r.text()).then(t => { document.title = "pwned: " + t.length; });`+
				`</script></body></html>`)
		case r.URL.Query().Get("stolen") != "":
			mu.Lock()
			stolen++
			mu.Unlock()
			next.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
	defer e.Mock.SetFHIRHook(nil)
	binary := e.URL + demo.ProxyPrefix + "Binary/evil"
	step("the page fetches the Binary once",
		chromedp.Poll[chromedp.Void](`fetch(`+quote(binary)+`, {headers: {"X-CSRF": "1"}}).then(r => r.status === 200)`,
			chromedp.WithPollingTimeout(10*time.Second)),
	)
	// A plain navigation: no X-CSRF. Whatever the browser does with it
	// (an error page, a download), it must not run the script.
	chromedp.Do(ctx, chromedp.Navigate(binary))
	time.Sleep(time.Second)
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.title`))
	if err != nil {
		t.Fatalf("reading the title after the navigation: %v", err)
	}
	chromedp.Do(ctx, shot("2b-cached-navigation.png"))
	mu.Lock()
	n := stolen
	mu.Unlock()
	if strings.HasPrefix(title, "pwned") || n > 0 {
		t.Errorf("cached navigation to %s: the Binary's script ran on the app's origin (title %q, %d reads of %s)", binary, title, n, patient)
	}
	step("back to the patient page",
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("reload")),
	)
}
