package core_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// The sizes of the heavy benchmarks, to run them smaller, for example
// go test ./core -run '^$' -bench ManySessions -bench.sessions=2000.
var (
	benchWaiters  = flag.Int("bench.waiters", 1000, "BenchmarkRefreshStorm: concurrent requests of the one session")
	benchSessions = flag.Int("bench.sessions", 10000, "BenchmarkManySessions: sessions expiring together")
)

// benchServiceTime is the fixed service time of the mock token endpoint in
// the heavy benchmarks: each token call takes at least this long.
const benchServiceTime = 20 * time.Millisecond

// BenchmarkLoadedSession measures the core hot path: Token and Attach on a
// loaded session whose token is valid, against scs's own Get of the same
// value (op=scsGet), which is the floor: Token is that Get plus an expiry
// check, Attach adds the context that carries the token.
func BenchmarkLoadedSession(b *testing.B) {
	srv := smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour})
	b.Cleanup(srv.Close)
	sm := scs.New()
	o := srv.Options()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm,
	})
	if err != nil {
		b.Fatal(err)
	}
	loaded := func(b *testing.B) context.Context {
		ctx, err := sm.Load(context.Background(), "")
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Save(ctx, srv.Grant()); err != nil {
			b.Fatal(err)
		}
		return ctx
	}
	ctx := loaded(b)

	b.Run("op=scsGet", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sm.Get(ctx, core.DefaultSessionKey)
		}
	})
	b.Run("op=Token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=Attach", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Attach(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Every goroutine has a session of its own, as concurrent requests of
	// different users do: nothing is shared but the Refresher.
	b.Run("op=AttachParallel", func(b *testing.B) {
		sessions := make([]context.Context, 64)
		for i := range sessions {
			sessions[i] = loaded(b)
		}
		var next atomic.Int64
		var failed atomic.Bool
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := sessions[int(next.Add(1))%len(sessions)]
			for pb.Next() {
				if _, err := r.Attach(ctx); err != nil {
					failed.Store(true)
				}
			}
		})
		if failed.Load() {
			b.Fatal("Attach failed")
		}
	})
	if n := srv.TokenCalls(); n != 0 {
		b.Fatalf("the hot path made %d token calls", n)
	}
}

// BenchmarkRefreshStorm: -bench.waiters (1,000) concurrent requests of one
// session, released at once. With token=due they arrive when the session's
// token is due, and the token endpoint takes benchServiceTime per call: one
// op is one storm, which must make exactly one token call. token=valid is
// the control: the same wave while the token is valid, which shows what
// loading and committing 1,000 copies of the session costs by itself.
//
// Custom metrics:
//
//	tokencalls/op   token calls per storm (exactly 1 when due, 0 when valid)
//	p50-ns, p99-ns  latency of the requests of the storm
//	extra-p50-ns    request latency minus the token call's duration at the
//	extra-p99-ns    server: what a request waits beyond the one token call
//	wake-p99-ns     from the end of the token call at the server to the end
//	                of a request: the fan-out of the one answer into every
//	                waiting request's own copy of the session
//	heap-B/waiter   live heap and goroutine stack per waiting request,
//	stack-B/waiter  measured with every request waiting on the one call
func BenchmarkRefreshStorm(b *testing.B) {
	n := *benchWaiters
	for _, token := range []struct {
		state string
		due   bool
	}{{"valid", false}, {"due", true}} {
		b.Run(fmt.Sprintf("waiters=%d/token=%s", n, token.state), func(b *testing.B) {
			benchStorm(b, n, token.due)
		})
	}
}

func benchStorm(b *testing.B, n int, due bool) {
	e := newBenchEnv(b, nil)
	cookies := slices.Repeat([]*http.Cookie{e.login()}, n)
	wantCalls := 0
	if due {
		wantCalls = 1
	}
	var latency, extra, wake []time.Duration
	calls := e.srv.RefreshCalls()
	for b.Loop() {
		b.StopTimer()
		if due {
			e.clock.Advance(time.Hour) // the session's token is due
		}
		before := e.srv.RefreshCalls()
		release, wait := e.wave(cookies)
		b.StartTimer()
		release()
		results := wait()
		b.StopTimer()
		if c := e.srv.RefreshCalls() - before; c != wantCalls {
			b.Fatalf("%d token calls for %d concurrent requests of one session, want exactly %d", c, n, wantCalls)
		}
		call := e.lastCall()
		for _, r := range results {
			if r.code != http.StatusNoContent {
				b.Fatalf("a request of the storm answered %d", r.code)
			}
			latency = append(latency, r.end-r.start)
			if due {
				extra = append(extra, r.end-r.start-call.duration())
				wake = append(wake, r.end-call.end)
			}
		}
		b.StartTimer()
	}
	calls = e.srv.RefreshCalls() - calls
	b.ReportMetric(float64(calls)/float64(b.N), "tokencalls/op")
	b.ReportMetric(float64(percentile(latency, 50)), "p50-ns")
	b.ReportMetric(float64(percentile(latency, 99)), "p99-ns")
	if due {
		heap, stack := e.memoryPerWaiter(cookies, 1)
		b.ReportMetric(float64(percentile(extra, 50)), "extra-p50-ns")
		b.ReportMetric(float64(percentile(extra, 99)), "extra-p99-ns")
		b.ReportMetric(float64(percentile(wake, 99)), "wake-p99-ns")
		b.ReportMetric(heap, "heap-B/waiter")
		b.ReportMetric(stack, "stack-B/waiter")
	}
	e.checkNoReuse()
}

// BenchmarkManySessions: -bench.sessions (10,000) sessions expire together
// and each gets one request at once. The token endpoint takes
// benchServiceTime per call. One op is one such wave; it must make exactly
// one token call per session.
//
// Without a cap, the number of token calls in flight at once is bounded
// only by how fast requests arrive; peak-calls reports it. Each of those
// calls opens a connection, and when they come faster than the mock
// server accepts them, the kernel drops connection attempts
// (listen-drops/op) and the clients retry them 1 s, 3 s, 7 s... later: a
// wave can then take many seconds. The cap=conns128 case caps the calls today
// with the HTTP client's transport (MaxConnsPerHost), which also caps
// Client's FHIR calls to the same host.
//
// Custom metrics:
//
//	tokencalls/op   token calls per wave (exactly bench.sessions)
//	peak-calls      most token calls in flight at once at the server
//	refreshes/s     token calls per second of wave
//	p50-ns, p99-ns  latency of the requests of the wave
//	listen-drops/op connection attempts the kernel dropped (Linux only; it
//	                counts the whole machine's)
//	heap-B/waiter   live heap and goroutine stack per request waiting for
//	stack-B/waiter  its token call, measured with every request waiting
func BenchmarkManySessions(b *testing.B) {
	n := *benchSessions
	for _, tc := range []struct {
		name      string
		transport func(*http.Transport)
		config    func(*core.Config)
		maxPeak   int64 // 0: not capped
	}{
		{name: "cap=none"},
		{name: "cap=conns128", transport: func(t *http.Transport) { t.MaxConnsPerHost = 128 }, maxPeak: 128},
		{name: "cap=refreshes128", config: func(c *core.Config) { c.MaxConcurrentRefreshes = 128 }, maxPeak: 128},
	} {
		b.Run(fmt.Sprintf("sessions=%d/%s", n, tc.name), func(b *testing.B) {
			e := newBenchEnv(b, tc.transport, tc.config)
			cookies := make([]*http.Cookie, n)
			for i := range cookies {
				cookies[i] = e.login()
			}
			var latency []time.Duration
			var peak int64
			calls := e.srv.RefreshCalls()
			drops, dropsOK := listenDrops()
			for b.Loop() {
				b.StopTimer()
				e.clock.Advance(time.Hour) // every session's token is due
				before := e.srv.RefreshCalls()
				e.peak.Store(0)
				release, wait := e.wave(cookies)
				b.StartTimer()
				release()
				results := wait()
				b.StopTimer()
				if c := e.srv.RefreshCalls() - before; c != n {
					b.Fatalf("%d token calls for %d sessions, want exactly one per session", c, n)
				}
				peak = max(peak, e.peak.Load())
				for _, r := range results {
					if r.code != http.StatusNoContent {
						b.Fatalf("a request of the wave answered %d", r.code)
					}
					latency = append(latency, r.end-r.start)
				}
				b.StartTimer()
			}
			calls = e.srv.RefreshCalls() - calls
			if after, ok := listenDrops(); ok && dropsOK {
				b.ReportMetric(float64(after-drops)/float64(b.N), "listen-drops/op")
			}
			if tc.maxPeak > 0 && peak > tc.maxPeak {
				b.Fatalf("%d token calls in flight at once, want at most %d", peak, tc.maxPeak)
			}
			heap, stack := e.memoryPerWaiter(cookies, n)
			e.checkNoReuse()

			b.ReportMetric(float64(calls)/float64(b.N), "tokencalls/op")
			b.ReportMetric(float64(peak), "peak-calls")
			b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "refreshes/s")
			b.ReportMetric(float64(percentile(latency, 50)), "p50-ns")
			b.ReportMetric(float64(percentile(latency, 99)), "p99-ns")
			b.ReportMetric(heap, "heap-B/waiter")
			b.ReportMetric(stack, "stack-B/waiter")
		})
	}
}

// benchEnv is a mock server whose token endpoint takes benchServiceTime per
// call and counts the calls in flight, a session manager configured as in
// production (memstore, IdleTimeout), a Refresher on a fake clock shared
// with the server, and an app: LoadAndSave around a handler that attaches
// the token and answers 204.
type benchEnv struct {
	b     *testing.B
	clock *smarttest.Clock
	srv   *smarttest.Server
	sm    *scs.SessionManager
	r     *core.Refresher
	app   http.Handler
	gate  *benchGate
	// transport is the Refresher's transport, behind the gate.
	transport *http.Transport
	t0        time.Time // the origin of every time below

	inflight, peak      atomic.Int64 // token calls in the server
	callStart, callEnd  atomic.Int64 // of the latest token call, since t0
	requests, completed atomic.Int64 // requests of waves
}

func newBenchEnv(b *testing.B, transport func(*http.Transport), config ...func(*core.Config)) *benchEnv {
	b.Helper()
	e := &benchEnv{b: b, clock: newClock(), t0: time.Now()}
	// The mock server logs to the standard logger, for example accept
	// errors when a flood of connections exhausts the open files: keep
	// those lines with the benchmark's log, not between the result lines.
	stdlog := log.Writer()
	log.SetOutput(benchLog{b})
	b.Cleanup(func() { log.SetOutput(stdlog) })
	e.srv = smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour, Now: e.clock.Now})
	b.Cleanup(e.srv.Close)
	e.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		start := time.Since(e.t0)
		n := e.inflight.Add(1)
		for p := e.peak.Load(); n > p && !e.peak.CompareAndSwap(p, n); p = e.peak.Load() {
		}
		time.Sleep(benchServiceTime)
		next.ServeHTTP(w, r)
		e.inflight.Add(-1)
		e.callStart.Store(int64(start))
		e.callEnd.Store(int64(time.Since(e.t0)))
	})

	// The refresher's own transport, as http.DefaultTransport is set up,
	// behind a gate for the memory probes.
	base := http.DefaultTransport.(*http.Transport).Clone()
	if transport != nil {
		transport(base)
	}
	b.Cleanup(base.CloseIdleConnections)
	e.transport = base
	e.gate = &benchGate{base: base}

	e.sm = scs.New()
	e.sm.IdleTimeout = 30 * time.Minute
	o := e.srv.Options()
	cfg := core.Config{
		TokenURL: e.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: e.sm, Now: e.clock.Now,
		HTTPClient: &http.Client{Transport: e.gate},
		// Long enough for connection attempts the kernel dropped in a
		// flood to be retried: the benchmarks count every token call.
		RefreshTimeout: 2 * time.Minute,
	}
	for _, c := range config {
		if c != nil {
			c(&cfg)
		}
	}
	r, err := core.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.r = r
	e.app = e.sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := e.r.Attach(req.Context()); err != nil {
			core.WriteError(w, req, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	return e
}

// login saves a fresh grant in a new session, as an app's callback would,
// and returns the session cookie.
func (e *benchEnv) login() *http.Cookie {
	e.b.Helper()
	ctx, err := e.sm.Load(context.Background(), "")
	if err != nil {
		e.b.Fatal(err)
	}
	if err := e.r.Save(ctx, e.srv.Grant()); err != nil {
		e.b.Fatal(err)
	}
	return &http.Cookie{Name: e.sm.Cookie.Name, Value: e.sm.Token(ctx)}
}

// benchResult is one request of a wave: when it started and ended (since
// t0) and its status.
type benchResult struct {
	start, end time.Duration
	code       int
}

// wave prepares one request per cookie, each on a goroutine of its own.
// release starts them all at once; wait returns their results.
func (e *benchEnv) wave(cookies []*http.Cookie) (release func(), wait func() []benchResult) {
	results := make([]benchResult, len(cookies))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cookies {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(c)
		wg.Go(func() {
			<-start
			w := httptest.NewRecorder()
			e.requests.Add(1)
			results[i].start = time.Since(e.t0)
			e.app.ServeHTTP(w, req)
			results[i].end = time.Since(e.t0)
			results[i].code = w.Code
			e.completed.Add(1)
		})
	}
	return func() { close(start) }, func() []benchResult { wg.Wait(); return results }
}

// benchCall is a token call as the server saw it, since t0.
type benchCall struct{ start, end time.Duration }

func (c benchCall) duration() time.Duration { return c.end - c.start }

func (e *benchEnv) lastCall() benchCall {
	return benchCall{time.Duration(e.callStart.Load()), time.Duration(e.callEnd.Load())}
}

// memoryPerWaiter runs one more wave of cookies, not timed, with the token
// requests held at the gate until every request of the wave is waiting, and
// returns the live heap and the goroutine stack each waiting request holds:
// its goroutines, its copy of the session, its share of the refresh.
// wantCalls is the number of token calls the wave must make.
//
// The stack figure depends on the runtime's initial stack size, which
// follows the average stack use seen by earlier garbage collections.
func (e *benchEnv) memoryPerWaiter(cookies []*http.Cookie, wantCalls int) (heap, stack float64) {
	e.b.Helper()
	e.clock.Advance(time.Hour)
	calls := e.srv.RefreshCalls()
	e.gate.close()
	defer e.gate.open()

	// Let the connections of the timed waves close and their goroutines
	// end first: they would otherwise be freed during the probe.
	e.transport.CloseIdleConnections()
	settle(func() int64 { return int64(runtime.NumGoroutine()) })
	var before, during runtime.MemStats
	fullGC()
	runtime.ReadMemStats(&before)
	requests, completed := e.requests.Load(), e.completed.Load()
	release, wait := e.wave(cookies)
	release()

	// Every request has started, and the number of held token requests
	// and of goroutines has stopped changing.
	ok := settle(func() int64 {
		if e.requests.Load()-requests < int64(len(cookies)) || e.gate.held.Load() == 0 {
			return -time.Now().UnixNano() // not yet: a value that changes
		}
		return e.gate.held.Load()<<32 | int64(runtime.NumGoroutine())
	})
	if !ok {
		e.b.Fatalf("memory probe: the wave never settled (%d of %d started, %d token requests held)",
			e.requests.Load()-requests, len(cookies), e.gate.held.Load())
	}
	if e.completed.Load() != completed {
		e.b.Fatal("memory probe: a request ended while the token requests were held")
	}
	fullGC()
	runtime.ReadMemStats(&during)
	e.gate.open()

	for _, r := range wait() {
		if r.code != http.StatusNoContent {
			e.b.Fatalf("memory probe: a request answered %d", r.code)
		}
	}
	if c := e.srv.RefreshCalls() - calls; c != wantCalls {
		e.b.Fatalf("memory probe: %d token calls, want %d", c, wantCalls)
	}
	n := float64(len(cookies))
	return float64(int64(during.HeapAlloc)-int64(before.HeapAlloc)) / n,
		float64(int64(during.StackInuse)-int64(before.StackInuse)) / n
}

// fullGC collects garbage twice: the second collection frees what sync.Pool
// caches (the HTTP server's buffers, for example) kept through the first.
func fullGC() {
	runtime.GC()
	runtime.GC()
}

// settle waits until f has returned the same value for 50 ms, for at most
// a minute, and reports whether it did.
func settle(f func() int64) bool {
	deadline := time.Now().Add(time.Minute)
	last, steady := f(), 0
	for steady < 5 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
		v := f()
		if v == last {
			steady++
		} else {
			last, steady = v, 0
		}
	}
	return true
}

func (e *benchEnv) checkNoReuse() {
	e.b.Helper()
	if n := e.srv.Reuses(); n != 0 {
		e.b.Fatalf("the server saw %d reused refresh tokens", n)
	}
	if n := e.srv.RevokedGrants(); n != 0 {
		e.b.Fatalf("the server revoked %d grants", n)
	}
}

// benchLog writes the standard logger's lines to the benchmark's log.
type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// benchGate is the Refresher's transport. While closed, it holds every
// token request before it is sent.
type benchGate struct {
	base http.RoundTripper
	mu   sync.Mutex
	wait chan struct{} // non-nil while closed
	held atomic.Int64
}

func (g *benchGate) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	wait := g.wait
	g.mu.Unlock()
	if wait != nil {
		g.held.Add(1)
		select {
		case <-wait:
		case <-req.Context().Done():
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, context.Cause(req.Context())
		}
	}
	return g.base.RoundTrip(req)
}

func (g *benchGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wait == nil {
		g.wait = make(chan struct{})
		g.held.Store(0)
	}
}

func (g *benchGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wait != nil {
		close(g.wait)
		g.wait = nil
	}
}

// listenDrops returns the number of connection attempts the kernel dropped
// because a listen queue was full (TcpExt ListenDrops), on Linux.
func listenDrops() (int64, bool) {
	data, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, false
	}
	var names []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		if i := slices.Index(names, "ListenDrops"); i > 0 && i < len(fields) {
			n, err := strconv.ParseInt(fields[i], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// percentile returns the p-th percentile of d (nearest rank); it sorts d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(i, 0)]
}
