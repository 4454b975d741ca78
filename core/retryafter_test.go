package core_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestLongRetryAfter: a token endpoint that refuses with a Retry-After of a
// day or more (in seconds, or as a date more than 24 h ahead) gets one
// request, not a retry at once; the error keeps the wait, clamped to a
// day, and the app's 503 carries it.
func TestLongRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		value  func(now time.Time) string
	}{
		{"429 86400", http.StatusTooManyRequests, func(time.Time) string { return "86400" }},
		{"503 a week", http.StatusServiceUnavailable, func(time.Time) string { return "604800" }},
		{"429 a date two days ahead", http.StatusTooManyRequests, func(now time.Time) string {
			return now.Add(48 * time.Hour).UTC().Format(http.TimeFormat)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			var waits sleeps
			core.SetSleep(f.r, waits.sleep)
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			f.srv.SetTokenHook(status(tt.status, tt.value(f.clock.Now())))
			_, err := f.token(session)
			if !errors.Is(err, core.ErrTransient) || errors.Is(err, core.ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrTransient, outcome known", err)
			}
			if n, ws := f.srv.RefreshCalls(), waits.list(); n != 1 || len(ws) != 0 {
				t.Errorf("token requests = %d, waits = %v; want 1 and none", n, ws)
			}
			if d, ok := core.RetryAfter(err); !ok || d != 24*time.Hour {
				t.Errorf("RetryAfter = %v, %v; want 24h", d, ok)
			}
			w := httptest.NewRecorder()
			core.WriteError(w, httptest.NewRequest("GET", "/", nil), err)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "86400" {
				t.Errorf("answer %d Retry-After %q, want 503 with 86400", w.Code, w.Header().Get("Retry-After"))
			}
			if _, err := f.r.Info(f.request(session)); err != nil {
				t.Errorf("stored token not kept: %v", err)
			}
		})
	}
}
