package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// overload is a run of sustained overload: users whose token has expired
// arrive at a steady rate, each asking the app (scs LoadAndSave around a
// handler that calls Attach) until it is served, and waiting Retry-After
// between tries. The token endpoint takes call per token call; the
// Refresher may make cap at once.
type overload struct {
	cap      int
	call     time.Duration // service time of a token call
	arrivals int           // users per second
	length   time.Duration // how long users keep arriving
	timeout  time.Duration // Config.RefreshTimeout
	queue    time.Duration // Config.RefreshQueueTimeout
	scale    float64       // Retry-After seconds are divided by this
}

// overloadResult counts what the users saw.
type overloadResult struct {
	users, served, shed int64 // shed: 503 with Retry-After
	other               int64 // any other answer (a 503 without Retry-After, a 401)
	lost                int64 // users never served (their grant was revoked)
	tokenCalls, reuses  int
	revoked             int
	elapsed             time.Duration
	minBudget           time.Duration   // least time a token request had left when sent
	toServe             []time.Duration // from a user's first request to its 204
	examples            []string
}

func (o overload) run(tb testing.TB) overloadResult {
	tb.Helper()
	clock := newClock()
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now})
	tb.Cleanup(srv.Close)
	srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(o.call)
		next.ServeHTTP(w, r)
	})
	sm := scs.New()
	sm.IdleTimeout = 30 * time.Minute
	opts := srv.Options()
	// The budget each token request still has when it leaves.
	var minBudget atomic.Int64
	minBudget.Store(int64(o.timeout))
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if d, ok := req.Context().Deadline(); ok {
			left := int64(time.Until(d))
			for m := minBudget.Load(); left < m && !minBudget.CompareAndSwap(m, left); m = minBudget.Load() {
			}
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: opts.ClientID, ClientSecret: opts.ClientSecret,
		AuthMethod: opts.AuthMethod, Sessions: sm, Now: clock.Now, HTTPClient: client,
		MaxConcurrentRefreshes: o.cap, RefreshTimeout: o.timeout, RefreshQueueTimeout: o.queue,
	})
	if err != nil {
		tb.Fatal(err)
	}
	app := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := r.Attach(req.Context()); err != nil {
			core.WriteError(w, req, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	// Every user logs in first, with a token that has already expired: a
	// failed refresh cannot fall back on it, so each request is either
	// served with a refreshed token or refused.
	n := int(o.length.Seconds() * float64(o.arrivals))
	cookies := make([]string, n)
	for i := range cookies {
		ctx, err := sm.Load(context.Background(), "")
		if err != nil {
			tb.Fatal(err)
		}
		tok := srv.Grant()
		tok.Expiry = clock.Now().Add(-time.Second)
		if err := r.Save(ctx, tok); err != nil {
			tb.Fatal(err)
		}
		cookies[i] = sm.Token(ctx)
	}

	var res overloadResult
	var mu sync.Mutex
	note := func(s string) {
		mu.Lock()
		if len(res.examples) < 5 {
			res.examples = append(res.examples, s)
		}
		mu.Unlock()
	}
	request := func(cookie string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: sm.Cookie.Name, Value: cookie})
		w := httptest.NewRecorder()
		app.ServeHTTP(w, req)
		return w
	}
	start := time.Now()
	var wg sync.WaitGroup
	every := time.Second / time.Duration(o.arrivals)
	for i, cookie := range cookies {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		wg.Go(func() {
			arrived := time.Now()
			for try := 0; try < 1000; try++ {
				w := request(cookie)
				switch ra := w.Header().Get("Retry-After"); {
				case w.Code == http.StatusNoContent:
					atomic.AddInt64(&res.served, 1)
					mu.Lock()
					res.toServe = append(res.toServe, time.Since(arrived))
					mu.Unlock()
					return
				case w.Code == http.StatusServiceUnavailable && ra != "":
					atomic.AddInt64(&res.shed, 1)
					secs, err := strconv.Atoi(ra)
					if err != nil || secs < 1 {
						note("bad Retry-After " + strconv.Quote(ra))
						secs = 1
					}
					time.Sleep(time.Duration(float64(secs) * float64(time.Second) / o.scale))
				case w.Code == http.StatusServiceUnavailable:
					// Refused without telling when to come back: wait as
					// for a Retry-After of 1 s.
					atomic.AddInt64(&res.other, 1)
					note(fmt.Sprintf("503 without Retry-After: %s", w.Body))
					time.Sleep(time.Duration(float64(time.Second) / o.scale))
				default:
					atomic.AddInt64(&res.other, 1)
					atomic.AddInt64(&res.lost, 1)
					note(fmt.Sprintf("%d: %s", w.Code, w.Body))
					return
				}
			}
			atomic.AddInt64(&res.lost, 1)
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.users = int64(n)
	res.tokenCalls, res.reuses, res.revoked = srv.RefreshCalls(), srv.Reuses(), srv.RevokedGrants()
	res.minBudget = time.Duration(minBudget.Load())
	return res
}

// TestSustainedOverload is issue 8's sustained overload at a quarter of
// its time scale: a cap of 2, token calls of 200 ms (50 ms here), twice as
// many sessions due per second as the cap can refresh, for 10 s (1.25 s
// here: 100 users, 25 token calls' time of arrivals beyond what the cap
// serves, enough to fill the 250 ms queue and shed; the full 2.5 s took
// 11 to 38 s under -race on a busy machine). Queueing for a refresh slot must never turn into an unknown
// outcome: no refresh token goes out twice, no grant is revoked, every
// request is served or answered 503 with Retry-After, and every user is
// served in the end with exactly one token call.
//
// RefreshTimeout is 10 s, two hundred token calls, so that no token call
// that really started can run out of time even on a crowded test machine,
// and each token request must leave with nearly all of it. Before the fix
// the wait for a slot came out of that budget: requests left with less
// and less of it as the queue grew, and once the queue was longer than
// RefreshTimeout (2 s in the issue), calls granted their slot late timed
// out after the server had rotated.
func TestSustainedOverload(t *testing.T) {
	const scale = 4
	o := overload{
		cap:      2,
		call:     200 * time.Millisecond / scale,
		arrivals: 2 * (2 * 5) * scale, // twice the 2 × 5 calls/s the cap serves at 200 ms
		length:   10 * time.Second / (2 * scale),
		timeout:  10 * time.Second,
		queue:    time.Second / scale,
		scale:    scale,
	}
	res := o.run(t)
	t.Logf("%d users over %v at %d/s: %d served, %d answers 503 with Retry-After, %d other answers, %d users lost; %d token calls, %d reuses, %d grants revoked, least budget left at a send %v of %v; %v",
		res.users, o.length, o.arrivals, res.served, res.shed, res.other, res.lost, res.tokenCalls, res.reuses, res.revoked,
		res.minBudget.Round(time.Millisecond), o.timeout, res.elapsed.Round(time.Millisecond))
	for _, e := range res.examples {
		t.Log("  e.g. ", e)
	}
	if res.reuses != 0 || res.revoked != 0 {
		t.Errorf("%d refresh tokens sent twice, %d grants revoked; want none", res.reuses, res.revoked)
	}
	if res.other != 0 {
		t.Errorf("%d answers were neither served nor 503 with Retry-After", res.other)
	}
	if res.served != res.users || res.lost != 0 {
		t.Errorf("%d of %d users served, %d lost", res.served, res.users, res.lost)
	}
	if res.tokenCalls != int(res.users) {
		t.Errorf("%d token calls for %d users, want exactly one each (a refused refresh sends nothing)", res.tokenCalls, res.users)
	}
	if res.shed == 0 {
		t.Errorf("no request was refused: the run was not an overload")
	}
	if res.minBudget < o.timeout-time.Second {
		t.Errorf("a token request left with %v of its %v RefreshTimeout: the wait for a slot was charged to the call", res.minBudget, o.timeout)
	}
}

// BenchmarkOverload runs TestSustainedOverload's load (a cap of 2, token
// calls of 50 ms, 2.5 s of arrivals) at 1, 2 and 4 times what the cap can
// serve. One op is one run. Every run must end with every user served,
// one token call per user and no reuse.
//
// Custom metrics:
//
//	served/s      requests served (204) per second of the run
//	shed/s        requests answered 503 with Retry-After per second
//	shed-%        share of all answers that were 503
//	tokencalls/s  token calls per second (at most 2 / 50 ms = 40)
//	serve-p50-ns  time from a user's first request to being served
//	serve-p99-ns
func BenchmarkOverload(b *testing.B) {
	for _, factor := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("load=%dx", factor), func(b *testing.B) {
			o := overload{
				cap: 2, call: 50 * time.Millisecond, arrivals: factor * 40,
				length: 2500 * time.Millisecond, timeout: 10 * time.Second,
				queue: 250 * time.Millisecond, scale: 4,
			}
			var served, shed, calls int64
			var elapsed time.Duration
			var toServe []time.Duration
			for b.Loop() {
				res := o.run(b)
				if res.reuses != 0 || res.revoked != 0 || res.other != 0 || res.served != res.users || res.tokenCalls != int(res.users) {
					b.Fatalf("%d reuses, %d revoked, %d other answers, %d of %d served, %d token calls",
						res.reuses, res.revoked, res.other, res.served, res.users, res.tokenCalls)
				}
				served += res.served
				shed += res.shed
				calls += int64(res.tokenCalls)
				elapsed += res.elapsed
				toServe = append(toServe, res.toServe...)
			}
			b.ReportMetric(float64(served)/elapsed.Seconds(), "served/s")
			b.ReportMetric(float64(shed)/elapsed.Seconds(), "shed/s")
			b.ReportMetric(100*float64(shed)/float64(served+shed), "shed-%")
			b.ReportMetric(float64(calls)/elapsed.Seconds(), "tokencalls/s")
			b.ReportMetric(float64(percentile(toServe, 50)), "serve-p50-ns")
			b.ReportMetric(float64(percentile(toServe, 99)), "serve-p99-ns")
		})
	}
}

// TestSlotWaitKeepsTheCallBudget: with a cap of 1, a refresh that waits
// for the slot while another session's call takes 2 s still gets its
// whole RefreshTimeout (3 s) for its own 1.5 s call. Before the fix the
// wait (about 1.95 s) was charged to the call, which timed out after the
// server had rotated the refresh token: an unknown outcome, and a reuse at
// the next request. Each call leaves at least 1 s of its budget unused, so
// that a busy machine (a -race run on two loaded cores) does not time it
// out either; with 400 ms of slack it did.
func TestSlotWaitKeepsTheCallBudget(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.MaxConcurrentRefreshes = 1
		c.RefreshTimeout = 3 * time.Second
		c.RefreshQueueTimeout = 4 * time.Second
	})
	var calls atomic.Int32
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) == 1 {
			time.Sleep(2 * time.Second)
		} else {
			time.Sleep(1500 * time.Millisecond)
		}
		next.ServeHTTP(w, r)
	})
	a, _ := f.login()
	b, _ := f.login()
	f.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []string{a, b} {
		wg.Go(func() {
			if i == 1 {
				time.Sleep(50 * time.Millisecond) // b queues behind a
			}
			_, errs[i] = f.token(s)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("session %d: %v", i, err)
		}
	}
	// The next request of each session uses what the first one stored.
	for _, s := range []string{a, b} {
		if _, err := f.token(s); err != nil {
			t.Error(err)
		}
	}
	if c := f.srv.RefreshCalls(); c != 2 {
		t.Errorf("token calls = %d, want 2", c)
	}
	f.checkNoReuse()
}

// TestSlotWaitRunsOut: a refresh that finds no free slot within
// RefreshQueueTimeout fails as transient with an *OverloadError: nothing
// is sent, the token stays in the session, the answer is 503 with a
// Retry-After, and the next request, once a slot is free, refreshes.
func TestSlotWaitRunsOut(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.MaxConcurrentRefreshes = 1
		c.RefreshQueueTimeout = 50 * time.Millisecond
	})
	release := make(chan struct{})
	var calls atomic.Int32
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if calls.Add(1) == 1 {
			<-release
		}
		next.ServeHTTP(w, r)
	})
	a, _ := f.login()
	b, saved := f.login()
	f.clock.Advance(time.Hour)
	done := make(chan error)
	go func() {
		_, err := f.token(a)
		done <- err
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err := f.token(b)
	var oe *core.OverloadError
	if !errors.Is(err, core.ErrOverloaded) || !errors.Is(err, core.ErrTransient) || !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an *OverloadError (ErrOverloaded, ErrTransient)", err)
	}
	if errors.Is(err, core.ErrOutcomeUnknown) {
		t.Errorf("a refused refresh has an unknown outcome: %v", err)
	}
	if oe.Waited < 50*time.Millisecond || oe.RetryAfter < time.Second {
		t.Errorf("Waited %v, RetryAfter %v; want ≥ 50ms and ≥ 1s", oe.Waited, oe.RetryAfter)
	}
	w := httptest.NewRecorder()
	core.WriteError(w, httptest.NewRequest("GET", "/", nil), err)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("answer %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("%d token calls, want only the one holding the slot", c)
	}
	info, err := f.r.Info(f.request(b))
	if err != nil || !info.HasRefreshToken || info.Refreshes != 0 {
		t.Errorf("session b after the refusal: %+v, %v; want its token kept", info, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tok, err := f.token(b)
	if err != nil || tok.RefreshToken == saved.RefreshToken {
		t.Fatalf("retry after the slot was freed: %v", err)
	}
	f.checkNoReuse()
}
