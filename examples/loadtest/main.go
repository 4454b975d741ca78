// Command loadtest drives a smartrefresh demo app with many sessions at
// once, and reports throughput, latency, answer statuses, token refreshes
// and refresh-token reuses.
//
// Against a running demo (examples/nethttp, examples/echo, examples/gin,
// with their embedded mock SMART server):
//
//	go run ./examples/nethttp -token-ttl 10s &
//	go run ./examples/loadtest -url http://127.0.0.1:8080 -sessions 50 -concurrency 4 -duration 20s
//
// Fully self-contained, with a mock SMART server and a minimal net/http app
// in this process, whose token calls and reuses it counts:
//
//	go run ./examples/loadtest -self -sessions 50 -concurrency 4 -duration 20s
//
// It logs in -sessions sessions (GET /launch, following the redirects with a
// cookie jar per session), then runs -concurrency concurrent requests per
// session to GET /api/patient for -duration, and reads each session's
// GET /api/token before and after. It only talks to loopback addresses, and
// stops after -duration or -max-requests requests, whichever comes first.
// The exit status is 1 when a request failed or a refresh token was reused.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the flags, so that a run stays bounded.
const (
	maxSessions = 10_000
	maxWorkers  = 2_000 // sessions × concurrency
	maxDuration = time.Hour
)

type config struct {
	url         string
	sessions    int
	concurrency int
	duration    time.Duration
	maxRequests int
	timeout     time.Duration
	self        bool
	tokenTTL    time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
	if !rep.ok() {
		os.Exit(1)
	}
}

func parseFlags(args []string, output io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "base URL of the running demo app (loopback only)")
	fs.IntVar(&c.sessions, "sessions", 10, "sessions to log in")
	fs.IntVar(&c.concurrency, "concurrency", 4, "concurrent requests per session")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to send requests")
	fs.IntVar(&c.maxRequests, "max-requests", 1_000_000, "stop after this many requests")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of each request")
	fs.BoolVar(&c.self, "self", false, "start a mock SMART server and a net/http app in this process, instead of -url")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 5*time.Second, "access token lifetime of the -self mock server")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case c.sessions < 1 || c.sessions > maxSessions:
		return config{}, fmt.Errorf("-sessions must be between 1 and %d", maxSessions)
	case c.concurrency < 1 || c.sessions*c.concurrency > maxWorkers:
		return config{}, fmt.Errorf("-concurrency must be at least 1, and -sessions × -concurrency at most %d", maxWorkers)
	case c.duration <= 0 || c.duration > maxDuration:
		return config{}, fmt.Errorf("-duration must be positive and at most %s", maxDuration)
	case c.maxRequests < 1:
		return config{}, errors.New("-max-requests must be positive")
	case c.timeout <= 0:
		return config{}, errors.New("-timeout must be positive")
	case c.self && c.tokenTTL < time.Second:
		return config{}, errors.New("-token-ttl must be at least 1s (expires_in counts whole seconds)")
	}
	if !c.self {
		if err := checkLoopback(c.url); err != nil {
			return config{}, err
		}
		c.url = strings.TrimRight(c.url, "/")
	}
	return c, nil
}

// checkLoopback accepts http(s) URLs on a loopback host only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-url %q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-url %q: loadtest only talks to loopback addresses", raw)
	}
	return nil
}

// report is the outcome of a run.
type report struct {
	target     string
	elapsed    time.Duration
	latencies  []time.Duration // sorted
	status     map[int]int
	errors     int
	firstError error
	// refreshes is the sum of the sessions' refresh counts from
	// /api/token, after the run minus before it.
	refreshes int
	// tokenCalls and reuses are counted by the -self mock server; -1 when
	// unknown.
	tokenCalls, reuses int
}

func run(ctx context.Context, args []string, stdout io.Writer) (*report, error) {
	cfg, err := parseFlags(args, stdout)
	if err != nil {
		return nil, err
	}
	rep := &report{target: cfg.url, tokenCalls: -1, reuses: -1}
	var self *selfApp
	if cfg.self {
		if self, err = startSelf(cfg.tokenTTL); err != nil {
			return nil, err
		}
		defer self.Close()
		rep.target = self.url
		fmt.Fprintf(stdout, "target:   %s (in-process mock SMART server and net/http app; access tokens live %s)\n",
			self.url, cfg.tokenTTL)
	} else {
		fmt.Fprintf(stdout, "target:   %s\n", cfg.url)
	}

	// One transport for every session, one cookie jar per session.
	transport := &http.Transport{
		MaxIdleConns:        cfg.sessions * cfg.concurrency,
		MaxIdleConnsPerHost: cfg.sessions * cfg.concurrency,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()
	clients := make([]*http.Client, cfg.sessions)
	for i := range clients {
		jar, _ := cookiejar.New(nil)
		clients[i] = &http.Client{Transport: transport, Jar: jar, Timeout: cfg.timeout}
	}

	start := time.Now()
	before, err := login(ctx, rep.target, clients)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "sessions: %d logged in (%s); %d concurrent requests each for %s\n",
		cfg.sessions, time.Since(start).Round(time.Millisecond), cfg.concurrency, cfg.duration)

	drive(ctx, rep, clients, cfg)

	if after, err := refreshCounts(ctx, rep.target, clients); err != nil {
		rep.errors++
		rep.firstError = firstOf(rep.firstError, err)
	} else {
		rep.refreshes = after - before
	}
	if self != nil {
		rep.tokenCalls = self.srv.RefreshCalls()
		rep.reuses = self.srv.Reuses()
	}
	rep.print(stdout)
	return rep, nil
}

// login logs every client's session in, a few at a time, and returns the
// sum of their refresh counts.
func login(ctx context.Context, base string, clients []*http.Client) (int, error) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, c := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			code, _, err := get(ctx, c, base+"/launch") // follows the redirects
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("GET /launch ended with %d, want 200", code)
			}
			if err != nil {
				mu.Lock()
				firstErr = firstOf(firstErr, fmt.Errorf("session %d: logging in: %w", i, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	n, err := refreshCounts(ctx, base, clients)
	if err != nil {
		return 0, fmt.Errorf("%w (is the redirect URL's host the same as -url's? the session cookie must come back)", err)
	}
	return n, nil
}

// refreshCounts returns the sum of the refresh counts of the sessions, as
// /api/token reports them.
func refreshCounts(ctx context.Context, base string, clients []*http.Client) (int, error) {
	total := 0
	for i, c := range clients {
		code, body, err := get(ctx, c, base+"/api/token")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /api/token answered %d: %s", code, strings.TrimSpace(string(body)))
		}
		var view struct {
			Refreshes int `json:"refreshes"`
		}
		if err == nil {
			err = json.Unmarshal(body, &view)
		}
		if err != nil {
			return 0, fmt.Errorf("session %d: %w", i, err)
		}
		total += view.Refreshes
	}
	return total, nil
}

// drive runs cfg.concurrency workers per session, each sending GET
// /api/patient in a loop until cfg.duration has passed or cfg.maxRequests
// requests were sent, and gathers their outcomes in rep.
func drive(ctx context.Context, rep *report, clients []*http.Client, cfg config) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var budget atomic.Int64
	budget.Store(int64(cfg.maxRequests))

	var mu sync.Mutex
	rep.status = map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range clients {
		for range cfg.concurrency {
			wg.Go(func() {
				var lat []time.Duration
				status := map[int]int{}
				errs := 0
				var firstErr error
				for ctx.Err() == nil && budget.Add(-1) >= 0 {
					t := time.Now()
					code, _, err := get(ctx, c, rep.target+"/api/patient")
					if err != nil {
						if ctx.Err() != nil {
							break // cut short by the end of the run
						}
						errs++
						firstErr = firstOf(firstErr, err)
						continue
					}
					lat = append(lat, time.Since(t))
					status[code]++
				}
				mu.Lock()
				defer mu.Unlock()
				rep.latencies = append(rep.latencies, lat...)
				for code, n := range status {
					rep.status[code] += n
				}
				rep.errors += errs
				rep.firstError = firstOf(rep.firstError, firstErr)
			})
		}
	}
	wg.Wait()
	rep.elapsed = time.Since(start)
	slices.Sort(rep.latencies)
}

// get sends GET target and returns the status and body of the answer.
func get(ctx context.Context, c *http.Client, target string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// firstOf returns the first non-nil error of errs.
func firstOf(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ok reports whether every request got 200 and no refresh token was
// reused.
func (r *report) ok() bool {
	return len(r.latencies) > 0 && r.errors == 0 && r.status[http.StatusOK] == len(r.latencies) && r.reuses <= 0
}

func (r *report) print(w io.Writer) {
	n := len(r.latencies)
	fmt.Fprintf(w, "requests: %d in %s: %.0f/s\n", n, r.elapsed.Round(time.Millisecond), float64(n)/r.elapsed.Seconds())
	if n > 0 {
		fmt.Fprintf(w, "latency:  p50 %s  p99 %s  max %s\n",
			percentile(r.latencies, 50), percentile(r.latencies, 99), r.latencies[n-1].Round(time.Microsecond))
	}
	codes := make([]int, 0, len(r.status))
	for code := range r.status {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", code, r.status[code]))
	}
	fmt.Fprintf(w, "status:   %s\n", strings.Join(parts, "  "))
	if r.errors > 0 {
		fmt.Fprintf(w, "errors:   %d (first: %v)\n", r.errors, r.firstError)
	}
	fmt.Fprintf(w, "session refreshes (from /api/token): %d\n", r.refreshes)
	if r.tokenCalls < 0 {
		fmt.Fprintln(w, "token calls: not visible from outside the demo (run with -self to count them at the mock server)")
		fmt.Fprintf(w, "refresh-token reuses: not visible from outside the demo; each would revoke its grant and show as 401 answers (%d here)\n",
			r.status[http.StatusUnauthorized])
		return
	}
	fmt.Fprintf(w, "token calls (refresh_token grants at the mock server): %d\n", r.tokenCalls)
	fmt.Fprintf(w, "refresh-token reuses: %d\n", r.reuses)
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)].Round(time.Microsecond)
}
