package core_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// hookLog collects what the refresher's hooks report.
type hookLog struct {
	mu        sync.Mutex
	refreshes []core.RefreshInfo
	failures  []core.RefreshErrorInfo
	reauths   []core.ReauthInfo
}

func (h *hookLog) config(cfg *core.Config) {
	cfg.OnRefresh = func(i core.RefreshInfo) { h.mu.Lock(); h.refreshes = append(h.refreshes, i); h.mu.Unlock() }
	cfg.OnRefreshError = func(i core.RefreshErrorInfo) { h.mu.Lock(); h.failures = append(h.failures, i); h.mu.Unlock() }
	cfg.OnReauth = func(i core.ReauthInfo) { h.mu.Lock(); h.reauths = append(h.reauths, i); h.mu.Unlock() }
}

// storm runs n concurrent requests of session that ask for its token.
func storm(f *fixture, session string, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			ctx := f.request(session)
			<-start
			_, errs[i] = f.r.Token(ctx)
			f.end(ctx)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func slowTokens(w http.ResponseWriter, r *http.Request, next http.Handler) {
	time.Sleep(30 * time.Millisecond)
	next.ServeHTTP(w, r)
}

func TestHooks(t *testing.T) {
	var h hookLog
	f := newFixture(t, smarttest.Options{}, h.config)
	core.SetSleep(f.r, (&sleeps{}).sleep)
	gate := newFlightGate(t, f.r)
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	gate.expect(50)
	storm(f, session, 50)
	if len(h.refreshes) != 1 {
		t.Fatalf("OnRefresh called %d times, want 1", len(h.refreshes))
	}
	got := h.refreshes[0]
	if !got.Rotated || got.Shared != 50 || !got.Expiry.Equal(f.clock.Now().Add(time.Hour)) {
		t.Errorf("RefreshInfo = %+v, want Rotated, Shared 50 and the new expiry", got)
	}

	// A transient failure.
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.WriteHeader(502)
	})
	f.clock.Advance(time.Hour)
	gate.expect(20)
	storm(f, session, 20)
	if len(h.failures) != 1 || h.failures[0].Class != core.ErrTransient || !h.failures[0].OutcomeUnknown || h.failures[0].Shared != 20 {
		t.Fatalf("OnRefreshError: %+v", h.failures)
	}

	// invalid_grant: one re-auth report for the whole storm.
	f.clock.Advance(time.Minute) // the grant's backoff after the failure
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant"}`)
	})
	gate.expect(20)
	storm(f, session, 20)
	if len(h.failures) != 2 || h.failures[1].Class != core.ErrReauthRequired || h.failures[1].Shared != 20 {
		t.Fatalf("OnRefreshError: %+v", h.failures)
	}
	if len(h.reauths) != 1 || !errors.Is(h.reauths[0].Reason, core.ErrReauthRequired) {
		t.Fatalf("OnReauth: %+v", h.reauths)
	}
}

func TestHooksReauthWithoutRefreshToken(t *testing.T) {
	var h hookLog
	f := newFixture(t, smarttest.Options{NoRefreshToken: true}, h.config)
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); !errors.Is(err, core.ErrNoRefreshToken) {
		t.Fatal(err)
	}
	if len(h.reauths) != 1 || !errors.Is(h.reauths[0].Reason, core.ErrNoRefreshToken) {
		t.Fatalf("OnReauth: %+v", h.reauths)
	}
	if len(h.refreshes)+len(h.failures) != 0 {
		t.Errorf("no token call was made, yet hooks reported %+v %+v", h.refreshes, h.failures)
	}
}

func TestOpenTelemetry(t *testing.T) {
	rec := newOTelRecorder()
	f := newFixture(t, smarttest.Options{}, func(cfg *core.Config) {
		cfg.MeterProvider = rec
		cfg.TracerProvider = rec
	})
	gate := newFlightGate(t, f.r)
	session, saved := f.login()
	f.clock.Advance(time.Hour)
	gate.expect(30)
	storm(f, session, 30)
	gate.expect(0)
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant"}`)
	})
	f.clock.Advance(time.Hour)
	f.token(session)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	sums := rec.sums
	want := map[string]int64{
		"smartrefresh.refreshes/success":         1,
		"smartrefresh.refreshes/reauth_required": 1,
		"smartrefresh.reauths/invalid_grant":     1,
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, sums[k], v, sums)
		}
	}
	if w := sums["smartrefresh.refresh.waiters"]; w != 29 {
		t.Errorf("waiters = %d, want 29 (all but the caller that started the refresh)", w)
	}
	if n := rec.counts["smartrefresh.refresh.duration"]; n != 2 {
		t.Errorf("duration histogram count = %d, want 2", n)
	}
	ended := rec.spans
	if len(ended) != 2 || ended[0].name != "smartrefresh.refresh" {
		t.Fatalf("spans: %d", len(ended))
	}
	for _, s := range ended {
		for _, a := range s.attrs {
			for _, secret := range []string{saved.AccessToken, saved.RefreshToken, "smart-secret"} {
				if strings.Contains(a.Value.Emit(), secret) {
					t.Errorf("span attribute %s leaks a secret", a.Key)
				}
			}
		}
	}
}

func TestClass(t *testing.T) {
	for _, tt := range []struct{ err, want error }{
		{nil, nil},
		{core.ErrNoToken, core.ErrReauthRequired},
		{core.ErrOutcomeUnknown, core.ErrTransient},
		{core.ErrNoSession, core.ErrMisconfigured},
		{errors.New("other"), core.ErrMisconfigured},
	} {
		if got := core.Class(tt.err); got != tt.want {
			t.Errorf("Class(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
