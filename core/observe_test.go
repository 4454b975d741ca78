package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

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

// observerLog is an Observer that records what it is told, in order; each
// token call is numbered by StartRefresh, and the other methods name the
// call whose context they were given.
type observerLog struct {
	mu        sync.Mutex
	calls     int
	events    []string
	refreshes []core.RefreshInfo
	failures  []core.RefreshErrorInfo
	reauths   []core.ReauthInfo
}

type callKey struct{}

func callOf(ctx context.Context) int { n, _ := ctx.Value(callKey{}).(int); return n }

func (o *observerLog) add(event string, n int) {
	o.mu.Lock()
	o.events = append(o.events, fmt.Sprint(event, " ", n))
	o.mu.Unlock()
}

func (o *observerLog) StartRefresh(ctx context.Context) (context.Context, func()) {
	o.mu.Lock()
	o.calls++
	n := o.calls
	o.mu.Unlock()
	o.add("start", n)
	return context.WithValue(ctx, callKey{}, n), func() { o.add("end", n) }
}

func (o *observerLog) Refreshed(ctx context.Context, info core.RefreshInfo) {
	o.add("refreshed", callOf(ctx))
	o.mu.Lock()
	o.refreshes = append(o.refreshes, info)
	o.mu.Unlock()
}

func (o *observerLog) RefreshFailed(ctx context.Context, info core.RefreshErrorInfo) {
	o.add("failed", callOf(ctx))
	o.mu.Lock()
	o.failures = append(o.failures, info)
	o.mu.Unlock()
}

func (o *observerLog) Reauth(ctx context.Context, info core.ReauthInfo) {
	o.add("reauth", callOf(ctx))
	o.mu.Lock()
	o.reauths = append(o.reauths, info)
	o.mu.Unlock()
}

func (o *observerLog) Resend(ctx context.Context) { o.add("resend", callOf(ctx)) }

func (o *observerLog) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

// callTransport records, for each token request, the call number in its
// context: the token call runs in the context StartRefresh returned.
type callTransport struct {
	mu    sync.Mutex
	calls []int
}

func (c *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.calls = append(c.calls, callOf(req.Context()))
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestObserver: a storm of 30 requests is one token call for the Observer,
// started and ended once, shared by 30; an invalid_grant is a failed call
// and one re-auth. The token request runs in the context StartRefresh
// returned, and the app's own hooks hear the same facts.
func TestObserver(t *testing.T) {
	obs := &observerLog{}
	var h hookLog
	transport := &callTransport{}
	f := newFixture(t, smarttest.Options{}, h.config, func(cfg *core.Config) {
		cfg.Observer = obs
		cfg.HTTPClient = &http.Client{Transport: transport}
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

	want := []string{"start 1", "refreshed 1", "end 1", "start 2", "failed 2", "end 2", "reauth 0"}
	if got := obs.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("Observer was told %q, want %q", got, want)
	}
	if got := obs.refreshes[0]; !got.Rotated || got.Shared != 30 {
		t.Errorf("Refreshed %+v, want Rotated and Shared 30", got)
	}
	if got := obs.failures[0]; got.Class != core.ErrReauthRequired || got.Shared != 1 {
		t.Errorf("RefreshFailed %+v, want class ErrReauthRequired, Shared 1", got)
	}
	if !errors.Is(obs.reauths[0].Reason, core.ErrReauthRequired) {
		t.Errorf("Reauth %+v, want an invalid_grant reason", obs.reauths[0])
	}
	if !slices.Equal(transport.calls, []int{1, 2}) {
		t.Errorf("token requests ran in the contexts of calls %v, want [1 2]", transport.calls)
	}
	// The app's own hooks are called as well, with the same facts.
	if len(h.refreshes) != 1 || !reflect.DeepEqual(h.refreshes[0], obs.refreshes[0]) || len(h.failures) != 1 || len(h.reauths) != 1 {
		t.Errorf("hooks heard %d refreshes, %d failures, %d re-auths; want 1, 1, 1", len(h.refreshes), len(h.failures), len(h.reauths))
	}
	all := fmt.Sprintf("%+v %+v %+v", obs.refreshes, obs.failures, obs.reauths)
	for _, secret := range []string{saved.AccessToken, saved.RefreshToken, "smart-secret"} {
		if strings.Contains(all, secret) {
			t.Errorf("the Observer was told a secret: %s", all)
		}
	}
}

// TestObserverResend: a refresh token resent after a lost answer is told
// to the Observer, inside its token call.
func TestObserverResend(t *testing.T) {
	obs := &observerLog{}
	f := newFixture(t, smarttest.Options{ReuseGraceWindow: 30 * time.Second}, func(cfg *core.Config) {
		cfg.Observer = obs
	})
	f.sleepOnClock()
	session, _ := f.login()
	f.srv.SetTokenHook(lostOnce())
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); err != nil {
		t.Fatal(err)
	}
	want := []string{"start 1", "resend 1", "refreshed 1", "end 1"}
	if got := obs.snapshot(); !slices.Equal(got, want) {
		t.Fatalf("Observer was told %q, want %q", got, want)
	}
	if !obs.refreshes[0].Resent {
		t.Errorf("Refreshed %+v, want Resent", obs.refreshes[0])
	}
}

// TestObserverReauthWithoutToken: a session without a refresh token is a
// re-auth and no token call.
func TestObserverReauthWithoutToken(t *testing.T) {
	obs := &observerLog{}
	f := newFixture(t, smarttest.Options{NoRefreshToken: true}, func(cfg *core.Config) { cfg.Observer = obs })
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); !errors.Is(err, core.ErrNoRefreshToken) {
		t.Fatal(err)
	}
	if got := obs.snapshot(); !slices.Equal(got, []string{"reauth 0"}) || !errors.Is(obs.reauths[0].Reason, core.ErrNoRefreshToken) {
		t.Fatalf("Observer was told %q %+v, want one re-auth for ErrNoRefreshToken", got, obs.reauths)
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

// TestObserverReplicasStorm: three replicas sharing a Coordinator, each
// with its own Observer, under a storm of 150 requests: one token call in
// all, and on every replica each started call ended exactly once, after
// its start.
func TestObserverReplicasStorm(t *testing.T) {
	coord := newMemCoordinator()
	obs := []*observerLog{{}, {}, {}}
	rep := &replicas{fixture: newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.Coordinator, c.Observer = coord, obs[0]
	})}
	rep.sms, rep.rs = []*scs.SessionManager{rep.sm}, []*core.Refresher{rep.r}
	for _, o := range obs[1:] {
		sm := scs.New()
		sm.IdleTimeout, sm.Store = rep.sm.IdleTimeout, rep.sm.Store
		so := rep.srv.Options()
		r, err := core.New(core.Config{TokenURL: rep.srv.TokenURL, ClientID: so.ClientID, ClientSecret: so.ClientSecret,
			AuthMethod: so.AuthMethod, Sessions: sm, Now: rep.clock.Now, Coordinator: coord, Observer: o})
		if err != nil {
			t.Fatal(err)
		}
		rep.sms, rep.rs = append(rep.sms, sm), append(rep.rs, r)
	}
	session, _ := rep.login()
	rep.srv.SetTokenHook(slowTokens)
	rep.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	for i := range 150 {
		wg.Go(func() {
			if _, err := rep.token(i%3, session); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	refreshed := 0
	for i, o := range obs {
		events := o.snapshot()
		for n := 1; n <= o.calls; n++ {
			start, end := slices.Index(events, fmt.Sprint("start ", n)), slices.Index(events, fmt.Sprint("end ", n))
			ends := 0
			for _, e := range events {
				if e == fmt.Sprint("end ", n) {
					ends++
				}
			}
			if start < 0 || end < start || ends != 1 {
				t.Errorf("replica %d, call %d: %q", i, n, events)
			}
		}
		refreshed += len(o.refreshes)
		if len(o.failures) != 0 {
			t.Errorf("replica %d: failures %+v", i, o.failures)
		}
	}
	if refreshed != 1 || rep.srv.RefreshCalls() != 1 {
		t.Errorf("%d refreshes told, %d token calls; want 1 and 1", refreshed, rep.srv.RefreshCalls())
	}
	rep.checkNoReuse()
}

// cancellingObserver returns a cancelled context from StartRefresh.
type cancellingObserver struct{ observerLog }

func (o *cancellingObserver) StartRefresh(ctx context.Context) (context.Context, func()) {
	ctx, end := o.observerLog.StartRefresh(ctx)
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	return ctx, end
}

// TestObserverCannotCancel: an Observer whose context is cancelled does
// not cut the token call short; the call still runs in its context.
func TestObserverCannotCancel(t *testing.T) {
	obs := &cancellingObserver{}
	transport := &callTransport{}
	f := newFixture(t, smarttest.Options{}, func(cfg *core.Config) {
		cfg.Observer = obs
		cfg.HTTPClient = &http.Client{Transport: transport}
	})
	session, _ := f.login()
	f.clock.Advance(time.Hour)
	if _, err := f.token(session); err != nil {
		t.Fatalf("refresh with a cancelling Observer: %v", err)
	}
	if got := obs.snapshot(); !slices.Equal(got, []string{"start 1", "refreshed 1", "end 1"}) || !slices.Equal(transport.calls, []int{1}) {
		t.Errorf("Observer was told %q, token requests in calls %v", got, transport.calls)
	}
	f.checkNoReuse()
}
