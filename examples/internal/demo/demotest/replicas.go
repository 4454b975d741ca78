package demotest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/examples/internal/demo"
	"github.com/smartrefresh/smartrefresh/internal/services"
)

// Engines the replica test runs on: the demo flag, and the environment
// variable that names the server (as for core/rediscoord's and
// core/pgcoord's tests).
var Engines = []struct{ Name, Flag, Env string }{
	{"Redis", "-redis", "SMARTREFRESH_REDIS_ADDR"},
	{"Postgres", "-postgres", "SMARTREFRESH_POSTGRES_URL"},
}

// ReplicaHeader pins a request to one replica (its index) at the test's
// proxy; requests without it go round-robin.
const ReplicaHeader = "X-Test-Replica"

// replicaTTL is the access token lifetime of the replica test: real time,
// since the demo processes run on their own clocks.
const replicaTTL = 2 * time.Second

// Replicas builds the demo in dir (an example's package directory, ".")
// and, for each engine that is configured, runs it as three processes on
// one session store and Coordinator, behind a round-robin proxy, against
// one strict mock SMART server the test owns. Through the proxy it
// launches, then fires storms of concurrent requests of the session at
// each expiry, spread over the three processes, and plays a stale-copy
// round across them: each storm must make exactly one token call, no
// refresh token may be reused, and every request must be answered 200.
func Replicas(t *testing.T, dir string) {
	if testing.Short() {
		t.Skip("builds and runs the demo: not with -short")
	}
	var bin string
	outer := t
	for _, e := range Engines {
		t.Run(e.Name, func(t *testing.T) {
			addr := os.Getenv(e.Env)
			if addr == "" {
				services.Missing(t, "set %s to run three demo processes on %s", e.Env, e.Name)
			}
			if bin == "" {
				bin = build(outer, dir)
			}
			replicas(t, bin, e.Flag, addr)
		})
	}
}

// build compiles the example in dir and returns the binary's path.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}
	return bin
}

// cluster is three demo processes behind the proxy.
type cluster struct {
	t       *testing.T
	mock    *smarttest.Server
	proxy   *httptest.Server
	backend []*url.URL
	outs    []*Buffer
	next    atomic.Uint64
	client  *http.Client
	answers atomic.Int64 // requests answered 200 through the proxy
}

func replicas(t *testing.T, bin, flag, addr string) {
	c := &cluster{t: t}
	// The proxy's URL is needed before the mock (its redirect URI) and
	// the processes (-redirect-url) exist.
	c.proxy = httptest.NewServer(http.HandlerFunc(c.route))
	t.Cleanup(c.proxy.Close)
	c.mock = smarttest.NewServer(smarttest.Options{
		ClientID: "replica-client", ClientSecret: "replica-secret",
		AccessTokenTTL: replicaTTL,
		RedirectURIs:   []string{c.proxy.URL + "/callback"},
		LaunchPatients: map[string]string{"ehr-456": "456"},
		Logf:           t.Logf,
	})
	t.Cleanup(c.mock.Close)

	for i := range 3 {
		c.start(bin, i, flag, addr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, out := range c.outs {
				t.Logf("replica %d output:\n%s", i, out)
			}
		}
	})
	c.client = browser(t)

	// Launch through the proxy: the callback may reach another process
	// than the launch did; the shared store makes that work.
	status, body := c.get("/launch", -1)
	if status != http.StatusOK || !strings.Contains(body, `action="/logout"`) {
		t.Fatalf("launch through the proxy: %d, want the logged-in page\n%s", status, body)
	}

	const storms, perStorm = 3, 60
	for round := 1; round <= storms; round++ {
		before := c.mock.RefreshCalls()
		time.Sleep(replicaTTL + 100*time.Millisecond) // the token expires
		c.storm(perStorm)
		calls := c.mock.RefreshCalls() - before
		t.Logf("%s storm %d: %d requests over 3 processes, %d token call(s), %d reuses", flag, round, perStorm, calls, c.mock.Reuses())
		if calls != 1 {
			t.Errorf("storm %d made %d token calls, want 1", round, calls)
		}
	}

	c.staleCopy()
	c.twoLaunches(flag)

	if n := c.mock.Reuses(); n != 0 {
		t.Errorf("the server saw %d reused refresh tokens", n)
	}
	if n := c.mock.RevokedGrants(); n != 0 {
		t.Errorf("the server revoked %d grants", n)
	}
	t.Logf("%s: %d requests answered 200 through the proxy, %d token calls in all, %d reuses",
		flag, c.answers.Load(), c.mock.RefreshCalls(), c.mock.Reuses())
}

// start runs replica i of the demo.
func (c *cluster) start(bin string, i int, flag, addr string) {
	t := c.t
	out := &Buffer{}
	o := c.mock.Options()
	cmd := exec.Command(bin,
		"-addr", "127.0.0.1:0",
		"-redirect-url", c.proxy.URL+"/callback",
		"-token-url", c.mock.TokenURL,
		"-authorize-url", c.mock.AuthorizeURL,
		"-fhir-base", c.mock.FHIRBaseURL,
		"-client-id", o.ClientID,
		flag, addr)
	cmd.Env = append(os.Environ(), demo.SecretEnv+"="+o.ClientSecret)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	appURL := out.WaitFor(t, done, regexp.MustCompile(`listening on (http://\S+)`), 60*time.Second)
	u, err := url.Parse(appURL)
	if err != nil {
		t.Fatal(err)
	}
	c.backend = append(c.backend, u)
	c.outs = append(c.outs, out)
}

// route is the proxy: round-robin over the replicas, or the one the
// ReplicaHeader names.
func (c *cluster) route(w http.ResponseWriter, r *http.Request) {
	i := int(c.next.Add(1) % uint64(len(c.backend)))
	if h := r.Header.Get(ReplicaHeader); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n >= len(c.backend) {
			http.Error(w, "bad replica", http.StatusBadRequest)
			return
		}
		i = n
	}
	httputil.NewSingleHostReverseProxy(c.backend[i]).ServeHTTP(w, r)
}

// get makes a request through the proxy, pinned to a replica unless
// replica is negative.
func (c *cluster) get(path string, replica int, header ...string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, c.proxy.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if replica >= 0 {
		req.Header.Set(ReplicaHeader, strconv.Itoa(replica))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Errorf("GET %s: %v", path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		c.t.Errorf("GET %s: %v", path, err)
	}
	if resp.StatusCode == http.StatusOK {
		c.answers.Add(1)
	}
	return resp.StatusCode, string(b)
}

// storm fires n concurrent API requests of the session, round-robin over
// the replicas; each must be answered 200.
func (c *cluster) storm(n int) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			path := "/api/patient"
			if i%2 == 1 {
				path = "/api/token"
			}
			if status, body := c.get(path, -1); status != http.StatusOK {
				c.t.Errorf("storm request %d (%s): %d %s", i, path, status, body)
			}
		})
	}
	close(start)
	wg.Wait()
}

// staleCopy: a slow request on replica 0 loads the session; after the
// token expired, replica 1 refreshes it; the slow request then ends and
// writes its copy, holding the refresh token replica 1 redeemed, back to
// the store. Replica 2, which took no part, then meets that stale copy: it
// must get replica 1's token from the Coordinator's record, without a token
// call. The next expiry then makes one token call.
func (c *cluster) staleCopy() {
	t := c.t
	time.Sleep(replicaTTL + 100*time.Millisecond) // a fresh token for the slow request
	c.get("/api/token", 1)
	before := c.mock.RefreshCalls()

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.mock.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		first := false
		once.Do(func() { first = true })
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		// Answered now (the token is valid), delivered late.
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		close(held)
		<-release
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
	defer c.mock.SetFHIRHook(nil)

	slow := make(chan int, 1)
	go func() {
		status, _ := c.get("/api/patient", 0)
		slow <- status
	}()
	<-held
	time.Sleep(replicaTTL) // the token the slow request holds expires
	if status, body := c.get("/api/token", 1); status != http.StatusOK {
		t.Errorf("the refresh on replica 1: %d %s", status, body)
	}
	if n := c.mock.RefreshCalls() - before; n != 1 {
		t.Errorf("the refresh on replica 1 made %d token calls, want 1", n)
	}
	close(release)
	if status := <-slow; status != http.StatusOK {
		t.Errorf("the slow request on replica 0: %d", status)
	}

	// Replica 2 meets the stale copy.
	if status, body := c.get("/api/patient", 2); status != http.StatusOK {
		t.Errorf("replica 2 on the stale copy: %d %s", status, body)
	}
	if n := c.mock.RefreshCalls() - before; n != 1 {
		t.Errorf("the stale copy made %d more token calls, want 0", n-1)
	}
	t.Logf("stale copy across replicas: %d token call(s) for the refresh and the stale copy, %d reuses", c.mock.RefreshCalls()-before, c.mock.Reuses())

	before = c.mock.RefreshCalls()
	time.Sleep(replicaTTL + 100*time.Millisecond)
	c.storm(30)
	if n := c.mock.RefreshCalls() - before; n != 1 {
		t.Errorf("the storm after the stale copy made %d token calls, want 1", n)
	}
}

// launchID is the launch a logged-in home page shows.
var launchID = regexp.MustCompile(`id="launch-id">([A-Za-z0-9_-]+)<`)

// twoLaunches: the session gets a second launch, from the EHR for patient
// 456, besides the first (patient 123). At each of two expiries, 60
// requests naming either launch, round-robin over the processes, make one
// token call per launch, and each answers its own launch's patient.
func (c *cluster) twoLaunches(flag string) {
	t := c.t
	status, body := c.get("/", -1)
	m := launchID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		t.Fatalf("the home page names no launch: %d\n%s", status, body)
	}
	first := m[1]
	status, body = c.get("/launch?iss="+url.QueryEscape(c.mock.FHIRBaseURL)+"&launch=ehr-456", -1)
	m = launchID.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || m[1] == first {
		t.Fatalf("the second launch: %d\n%s", status, body)
	}
	second := m[1]
	patients := map[string]string{first: `"id":"123"`, second: `"id":"456"`}
	for round := 1; round <= 2; round++ {
		before := c.mock.RefreshCalls()
		time.Sleep(replicaTTL + 100*time.Millisecond) // both tokens expire
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 60 {
			wg.Go(func() {
				<-start
				id := first
				if i%2 == 1 {
					id = second
				}
				status, body := c.get("/api/patient", -1, "X-SMART-Launch", id)
				if status != http.StatusOK || !strings.Contains(body, patients[id]) {
					t.Errorf("two launches, request %d: %d %.200s, want patient %s", i, status, body, patients[id])
				}
			})
		}
		close(start)
		wg.Wait()
		calls := c.mock.RefreshCalls() - before
		t.Logf("%s two launches, storm %d: 60 requests over 3 processes, %d token call(s), %d reuses", flag, round, calls, c.mock.Reuses())
		if calls != 2 {
			t.Errorf("two launches, storm %d made %d token calls, want 2 (one per launch)", round, calls)
		}
	}
}
