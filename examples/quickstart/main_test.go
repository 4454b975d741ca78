package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter passes each write (run prints one line) to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) { w <- string(p); return len(p), nil }

// logBuffer is a log destination the server's goroutines share.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs the quick start offline on a free loopback port until the
// test ends and returns its URL and its log.
func start(t *testing.T) (string, *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	out := make(lineWriter, 1)
	done := make(chan error, 1)
	env := map[string]string{"APP_ADDR": "127.0.0.1:0"}
	go func() {
		done <- run(ctx, func(k string) string { return env[k] }, slog.New(slog.NewTextHandler(logs, nil)), out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case line := <-out:
		u, ok := strings.CutPrefix(strings.TrimSpace(line), "open ")
		if !ok {
			t.Fatalf("the quick start printed %q, want the URL to open", line)
		}
		return strings.TrimSuffix(strings.Fields(u)[0], "/"), logs
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the quick start printed no URL in 10 s")
	}
	return "", nil
}

// TestQuickStart runs the quick start as a user would: a browser (a client
// with a cookie jar) opens the printed URL, is sent to /launch with the page
// as return_to, through the mock server's authorization and the callback,
// back to the page, which answers the launch patient read with the
// session's token.
func TestQuickStart(t *testing.T) {
	origin, logs := start(t)
	jar, _ := cookiejar.New(nil)
	var hops []string
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			hops = append(hops, req.URL.Path)
			return nil
		}}
	req, _ := http.NewRequest("GET", origin+"/", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The callback names the new launch in the page it lands on.
	if u := resp.Request.URL; resp.StatusCode != http.StatusOK || u.Path != "/" || !strings.HasPrefix(u.String(), origin+"/?smart_launch=") {
		t.Fatalf("opening %s/ ended at %s with %d: %s (hops %v)", origin, resp.Request.URL, resp.StatusCode, body, hops)
	}
	if want := []string{"/launch", "/authorize", "/callback", "/"}; strings.Join(hops, " ") != strings.Join(want, " ") {
		t.Errorf("redirects went through %v, want %v", hops, want)
	}
	var patient struct{ ResourceType, ID string }
	if err := json.Unmarshal(body, &patient); err != nil || patient.ResourceType != "Patient" || patient.ID == "" {
		t.Errorf("the page answered %s, want the launch patient", body)
	}

	// Opened under another host name, the app first sends the browser to
	// its own origin, where the cookie and the callback are.
	req, _ = http.NewRequest("GET", origin+"/?x=1", nil)
	req.Host = strings.Replace(req.Host, "127.0.0.1", "localhost", 1)
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || loc != origin+"/?x=1" {
		t.Errorf("opened as localhost: %d %q, want 307 to %s/?x=1", resp.StatusCode, loc, origin)
	}

	if l := logs.String(); !strings.Contains(l, "in-process mock SMART server") || strings.Contains(l, "smart-secret") {
		t.Errorf("the log should say the mock server is used, and never the secret:\n%s", l)
	}
}

// TestREADMEIsTheQuickStart: the README's quick start is this program, file
// for file.
func TestREADMEIsTheQuickStart(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```go\n"+string(src)+"```\n")) {
		t.Error("README.md does not hold examples/quickstart/main.go as a ```go block, byte for byte: copy it there again")
	}
}
