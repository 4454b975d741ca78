package rediscoord_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/internal/services"
)

// redisServer is a redis-server process of the test's own, with
// persistence (an append-only file fsynced on every write, so that every
// acknowledged lock and record survives a restart), which the test can kill
// and start again on the same port.
type redisServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startRedisServer starts a redis-server on a free loopback port, stopped
// when t ends. It skips t unless SMARTREFRESH_REDIS_ADDR is set (the Redis
// tests are on) and a redis-server binary is in PATH (bash .ci/run installs
// one).
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if os.Getenv(rediscoord.AddrEnv) == "" {
		services.Missing(t, "restarts a redis-server of its own: set %s (bash .ci/run does)", rediscoord.AddrEnv)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		services.Missing(t, "restarts a redis-server of its own, and there is none in PATH: %v", err)
	}
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), addr: freeLoopbackAddr(t)}
	s.start()
	t.Cleanup(s.kill)
	return s
}

// freeLoopbackAddr returns a loopback address whose port nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start starts the server and waits until it answers PING, its data loaded.
func (s *redisServer) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := redis.Dial("tcp", s.addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second))
		if err == nil {
			_, err = conn.Do("PING") // LOADING while the append-only file is read
			conn.Close()
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not come up: %v\n%s", s.addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill kills the server, as a crash or an orchestrator's restart would, and
// waits until it has exited.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// restartPool is a replica's pool on addr. A checked pool tests each idle
// connection with PING when it is borrowed (TestOnBorrow, as in the
// README's wiring); an unchecked one hands out whatever it holds, dead or
// not, as the pool of an app that never set TestOnBorrow.
func restartPool(addr string, checked bool) *redis.Pool {
	p := &redis.Pool{
		MaxIdle:     16,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second),
				redis.DialWriteTimeout(2*time.Second))
		},
	}
	if checked {
		p.TestOnBorrow = func(c redis.Conn, _ time.Time) error {
			_, err := c.Do("PING")
			return err
		}
	}
	return p
}

// warm fills pool with n idle connections, as a busy app's pool is.
func warm(t *testing.T, pool *redis.Pool, n int) {
	t.Helper()
	conns := make([]redis.Conn, n)
	for i := range conns {
		conns[i] = pool.Get()
		if _, err := conns[i].Do("PING"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestRedisRestartDuringTokenCall: Redis restarts (with persistence) while
// replica A's token call is in flight, so every connection A's pool holds
// is dead when the answer comes, or Redis is still down then. A must still
// record the redemption before it frees the lock, and replica B, meeting a
// stale copy of the session afterwards, must not send the redeemed refresh
// token again: 0 reuses.
func TestRedisRestartDuringTokenCall(t *testing.T) {
	tests := []struct {
		name    string
		checked bool          // the pool tests connections on borrow
		downFor time.Duration // how long Redis stays down after the token answer
	}{
		{"pool without TestOnBorrow, Redis back before the answer", false, 0},
		{"pool without TestOnBorrow, Redis back 1s after the answer", false, time.Second},
		{"pool with TestOnBorrow, Redis back before the answer", true, 0},
		{"pool with TestOnBorrow, Redis back 1s after the answer", true, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redisRestartDuringTokenCall(t, tt.checked, tt.downFor)
		})
	}
}

func redisRestartDuringTokenCall(t *testing.T, checked bool, downFor time.Duration) {
	rs := startRedisServer(t)
	clock := smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now, AccessTokenTTL: time.Hour, Logf: t.Logf})
	t.Cleanup(srv.Close)
	logs := &rediscoord.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("refresher logs:\n%s", logs)
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Two replicas, each with its own pool and Coordinator on the Redis
	// that restarts. The sessions live in a store that does not restart
	// (shared memory), so that only the coordination is under test.
	store := scs.New().Store
	type replica struct {
		sm   *scs.SessionManager
		r    *core.Refresher
		pool *redis.Pool
	}
	newReplica := func() *replica {
		pool := restartPool(rs.addr, checked)
		t.Cleanup(func() { pool.Close() })
		sm := scs.New()
		sm.IdleTimeout = 30 * time.Minute
		sm.Store = store
		o := srv.Options()
		r, err := core.New(core.Config{
			TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			AuthMethod: o.AuthMethod, Sessions: sm, Now: clock.Now, Logger: logger,
			Coordinator: rediscoord.New(pool, rediscoord.WithLease(3*time.Second),
				rediscoord.WithRetryInterval(10*time.Millisecond), rediscoord.WithLogger(logger)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return &replica{sm: sm, r: r, pool: pool}
	}
	a, b := newReplica(), newReplica()
	load := func(rep *replica, session string) context.Context {
		ctx, err := rep.sm.Load(context.Background(), session)
		if err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	commit := func(rep *replica, ctx context.Context) {
		if _, _, err := rep.sm.Commit(ctx); err != nil {
			t.Error(err)
		}
	}

	ctx := load(a, "")
	saved := srv.Grant()
	if err := a.r.Save(ctx, saved); err != nil {
		t.Fatal(err)
	}
	session := a.sm.Token(ctx)
	warm(t, a.pool, 8)
	warm(t, b.pool, 8)
	clock.Advance(time.Hour)

	stale := load(b, session) // B's slow request holds the token A will redeem

	entered, answer := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		once.Do(func() { close(entered); <-answer })
		next.ServeHTTP(w, r)
	})
	type result struct {
		tok *core.Token
		err error
	}
	fromA := make(chan result, 1)
	go func() {
		ctx := load(a, session)
		tok, err := a.r.Token(ctx)
		commit(a, ctx)
		fromA <- result{tok, err}
	}()
	<-entered
	rs.kill() // Redis restarts in the middle of A's token call
	if downFor == 0 {
		rs.start()
		close(answer)
	} else {
		close(answer)
		time.Sleep(downFor)
		rs.start()
	}
	resA := <-fromA
	if resA.err != nil {
		t.Fatalf("replica A's refresh: %v", resA.err)
	}
	if resA.tok.RefreshToken == saved.RefreshToken {
		t.Fatal("test setup: the token did not rotate")
	}

	// B's slow request ends: its stale copy overwrites A's token. B's
	// next requests meet the redeemed refresh token; transient failures
	// (Redis connections found dead) are retried as a browser would.
	commit(b, stale)
	var (
		tok *core.Token
		err error
	)
	for deadline := time.Now().Add(20 * time.Second); ; {
		ctx := load(b, session)
		tok, err = b.r.Token(ctx)
		commit(b, ctx)
		if err == nil || !errors.Is(err, core.ErrTransient) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("token calls %d, reuses %d, revoked grants %d", srv.RefreshCalls(), srv.Reuses(), srv.RevokedGrants())
	if err != nil {
		t.Errorf("replica B on the stale copy: %v", err)
	} else if tok.AccessToken != resA.tok.AccessToken {
		t.Error("replica B did not get the token replica A refreshed")
	}
	if n := srv.Reuses(); n != 0 {
		t.Errorf("the server saw %d reused refresh tokens", n)
	}
	if n := srv.RevokedGrants(); n != 0 {
		t.Errorf("the server revoked %d grants", n)
	}
	if n := srv.RefreshCalls(); n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
}

// TestLockAcrossRedisRestart: a held lock outlives a Redis restart longer
// than its lease (its holder takes it back once Redis answers), and an
// unlock that Redis missed frees the lock once Redis is back, not a lease
// later.
func TestLockAcrossRedisRestart(t *testing.T) {
	rs := startRedisServer(t)
	pool := restartPool(rs.addr, false)
	t.Cleanup(func() { pool.Close() })
	const lease = 600 * time.Millisecond
	logs := &rediscoord.LogBuffer{}
	a := rediscoord.New(pool, rediscoord.WithLease(lease), rediscoord.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	warm(t, pool, 8)
	value := func(key string) (string, bool) {
		t.Helper()
		conn, err := redis.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		v, err := redis.String(conn.Do("GET", key))
		if errors.Is(err, redis.ErrNil) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return v, true
	}

	unlock, err := a.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := value("k")
	rs.kill()
	time.Sleep(lease + 300*time.Millisecond) // the lease runs out while Redis is away
	rs.start()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if v, ok := value("k"); ok && v == mine {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder did not take its lock back after the restart; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	poolB := restartPool(rs.addr, false)
	t.Cleanup(func() { poolB.Close() })
	b := rediscoord.New(poolB, rediscoord.WithLease(lease), rediscoord.WithRetryInterval(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*lease)
	if u, err := b.Lock(ctx, "k"); err == nil {
		u()
		t.Fatal("another process took the lock while its holder lived")
	}
	cancel()

	// Redis goes away again; the unlock fails, then frees the lock once
	// Redis is back.
	rs.kill()
	unlock()
	rs.start()
	start := time.Now()
	for {
		if _, ok := value("k"); !ok {
			break
		}
		if time.Since(start) > lease {
			t.Fatal("the lock was not freed after Redis came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), mine) {
		t.Errorf("the logs contain the lock's value")
	}
}

// TestLockAfterRestartThatLostIt: Redis restarts between two renewals and
// loses every key (no persistence, or a lost disk). The holder, still
// inside its redemption, takes its lock back at the next renewal rather
// than leave it to the next process.
func TestLockAfterRestartThatLostIt(t *testing.T) {
	rs := startRedisServer(t)
	pool := restartPool(rs.addr, false)
	t.Cleanup(func() { pool.Close() })
	const lease = 900 * time.Millisecond
	a := rediscoord.New(pool, rediscoord.WithLease(lease), rediscoord.WithPrefix("p:"))
	warm(t, pool, 8)
	unlock, err := a.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	rs.kill()
	if err := os.RemoveAll(rs.dir); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(rs.dir, 0o700)
	rs.start() // empty
	conn, err := redis.Dial("tcp", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(lease)
	for {
		if n, _ := redis.Int(conn.Do("EXISTS", "p:k")); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder did not take back the lock the restart lost")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
