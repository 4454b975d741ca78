package rediscoord

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// testCoordinator returns a Coordinator on its own pool of the test Redis,
// under prefix.
func testCoordinator(t *testing.T, prefix string, opts ...Option) *Coordinator {
	t.Helper()
	return New(NewTestPool(t), append([]Option{WithPrefix(prefix)}, opts...)...)
}

func get(t *testing.T, pool *redis.Pool, key string) (string, bool) {
	t.Helper()
	conn := pool.Get()
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

func do(t *testing.T, pool *redis.Pool, cmd string, args ...any) any {
	t.Helper()
	conn := pool.Get()
	defer conn.Close()
	v, err := conn.Do(cmd, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLockMutualExclusion(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	// Two processes' worth of Coordinators, each on its own pool.
	coords := []*Coordinator{
		testCoordinator(t, prefix, WithRetryInterval(4*time.Millisecond)),
		testCoordinator(t, prefix, WithRetryInterval(4*time.Millisecond)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var holders, maxHolders, done atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			unlock, err := coords[i%2].Lock(ctx, "k")
			if err != nil {
				t.Error(err)
				return
			}
			n := holders.Add(1)
			for {
				m := maxHolders.Load()
				if n <= m || maxHolders.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			holders.Add(-1)
			done.Add(1)
			unlock()
		})
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("up to %d goroutines held the lock at once", m)
	}
	if n := done.Load(); n != 100 {
		t.Errorf("%d of 100 goroutines got the lock", n)
	}
	if _, ok := get(t, pool, prefix+"k"); ok {
		t.Error("the lock is still set after every holder unlocked")
	}
}

func TestLockLeaseIsRenewedWhileHeld(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	a := testCoordinator(t, prefix, WithLease(200*time.Millisecond))
	b := testCoordinator(t, prefix, WithLease(200*time.Millisecond), WithRetryInterval(5*time.Millisecond))
	unlock, err := a.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	// Held for 1 s, five leases: nobody else gets it meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if u, err := b.Lock(ctx, "k"); err == nil {
		u()
		t.Fatal("another holder took the lock while its holder was alive: the lease was not renewed")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock error %v, want one wrapping context.DeadlineExceeded", err)
	}
	if pttl, _ := redis.Int64(do(t, pool, "PTTL", prefix+"k"), nil); pttl <= 0 || pttl > 200 {
		t.Errorf("PTTL of the held lock %d ms, want within the 200 ms lease", pttl)
	}
	// Once unlocked, the next holder gets it at once, not after a lease.
	unlock()
	start := time.Now()
	u, err := b.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer u()
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("the next holder waited %v after the unlock", d)
	}
}

func TestLockOfCrashedHolderIsFreedAfterLease(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	const lease = 300 * time.Millisecond
	a := testCoordinator(t, prefix, WithLease(lease))
	b := testCoordinator(t, prefix, WithLease(lease), WithRetryInterval(5*time.Millisecond))

	// a crashes while holding the lock: its renewal stops and it never
	// unlocks.
	l, err := a.acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	l.stopRenewal()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := b.Lock(ctx, "k")
	if err != nil {
		t.Fatalf("the lock of a crashed holder was not freed: %v", err)
	}
	defer unlock()
	if d := time.Since(taken); d < lease-50*time.Millisecond || d > lease+time.Second {
		t.Errorf("got the crashed holder's lock after %v, want about the %v lease", d, lease)
	}

	// The same with a lock another process set by hand.
	do(t, pool, "SET", prefix+"other", "someone-else", "PX", 300)
	start := time.Now()
	u, err := b.Lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	u()
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("got a lock held by another after %v, before its lease ran out", d)
	}
}

func TestUnlockNeverDeletesAnotherHoldersLock(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	logs := &LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	a := testCoordinator(t, prefix, WithLease(100*time.Millisecond), WithLogger(logger))
	b := testCoordinator(t, prefix, WithLease(time.Second), WithRetryInterval(5*time.Millisecond))

	// a stalls (a GC pause, a stopped VM) past its lease; b takes the
	// lock; a wakes up and unlocks.
	l, err := a.acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	l.stopRenewal()
	unlockB, err := b.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	bValue, _ := get(t, pool, prefix+"k")
	l.unlock()
	l.unlock() // idempotent
	if v, ok := get(t, pool, prefix+"k"); !ok || v != bValue {
		t.Fatal("a's unlock deleted the lock b holds")
	}
	if !strings.Contains(logs.String(), "no longer held") {
		t.Errorf("the lost lock was not reported: %q", logs.String())
	}
	unlockB()
	if _, ok := get(t, pool, prefix+"k"); ok {
		t.Fatal("b's unlock left its lock")
	}

	// a's renewal finds its lock taken: it stops, reports it without the
	// lock's values, and a's unlock leaves the new holder's lock.
	logs2 := &LogBuffer{}
	a2 := testCoordinator(t, prefix, WithLease(150*time.Millisecond), WithLogger(slog.New(slog.NewTextHandler(logs2, nil))))
	unlockA, err := a2.Lock(context.Background(), "k2")
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := get(t, pool, prefix+"k2")
	do(t, pool, "SET", prefix+"k2", "intruder-value", "PX", 10_000)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs2.String(), "was lost") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs2.String(), "was lost") {
		t.Errorf("the renewal did not report the lost lock: %q", logs2.String())
	}
	unlockA()
	if v, _ := get(t, pool, prefix+"k2"); v != "intruder-value" {
		t.Errorf("the unlock of a lost lock changed the new holder's lock to %q", v)
	}
	for _, s := range []string{mine, "intruder-value", prefix} {
		if strings.Contains(logs.String()+logs2.String(), s) {
			t.Errorf("the logs contain %q", s)
		}
	}
}

func TestLockWaitEndsWithContext(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix)
	unlock, err := c.Lock(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.Lock(ctx, "k")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Lock cancelled while waiting: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Lock returned %v after its context was cancelled", d)
	}

	cause := errors.New("refresh deadline")
	ctx, cancel = context.WithTimeoutCause(context.Background(), 50*time.Millisecond, cause)
	defer cancel()
	_, err = c.Lock(ctx, "k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, cause) {
		t.Errorf("Lock past its deadline: %v, want DeadlineExceeded and the cause", err)
	}

	// A context already done: no attempt at all.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Lock(ctx, "free"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context: %v", err)
	}
	if _, ok := get(t, pool, prefix+"free"); ok {
		t.Error("Lock with a cancelled context took the lock")
	}
}

func TestLoadStore(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix)
	ctx := context.Background()
	if v, ok, err := c.Load(ctx, "missing"); err != nil || ok || v != nil {
		t.Fatalf("Load of a missing key = %q, %v, %v", v, ok, err)
	}
	if err := c.Store(ctx, "k", []byte("value\x00\xff"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ok, err := c.Load(ctx, "k")
	if err != nil || !ok || string(v) != "value\x00\xff" {
		t.Fatalf("Load = %q, %v, %v", v, ok, err)
	}
	if pttl, _ := redis.Int64(do(t, pool, "PTTL", prefix+"k"), nil); pttl <= 59_000 || pttl > 60_000 {
		t.Errorf("PTTL %d ms, want about a minute", pttl)
	}
	// Below a millisecond rounds up; it expires.
	if err := c.Store(ctx, "short", []byte("x"), time.Microsecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, ok, _ := c.Load(ctx, "short"); ok {
		t.Error("a value stored for a microsecond is still there")
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := c.Store(ctx, "k", []byte("v"), ttl); !errors.Is(err, ErrTTL) {
			t.Errorf("Store with ttl %v: %v, want ErrTTL", ttl, err)
		}
	}
	// The prefix applies to every key.
	if _, ok := get(t, pool, prefix+"k"); !ok {
		t.Error("the value is not under the prefix")
	}
	if _, ok := get(t, pool, "k"); ok {
		t.Error("a value is stored without the prefix")
	}

	// A cancelled context is honoured.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := c.Load(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
	if err := c.Store(cctx, "k", []byte("v"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Store with a cancelled context: %v", err)
	}
}

func TestRedisDownErrorsHoldNoValue(t *testing.T) {
	// Nothing listens on port 1.
	logs := &LogBuffer{}
	c := New(newPool("127.0.0.1:1"), WithRetryInterval(time.Millisecond), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const secret = "refresh-token-record-secret"
	errs := []error{c.Store(ctx, "k", []byte(secret), time.Minute)}
	_, _, err := c.Load(ctx, "k")
	errs = append(errs, err)
	_, err = c.Lock(ctx, "k")
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Errorf("call %d succeeded without Redis", i)
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call %d waited for its deadline instead of failing: %v", i, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds the value", err)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the logs hold the value: %q", logs.String())
	}
}

func TestNewValidates(t *testing.T) {
	pool := newPool("127.0.0.1:1")
	c := New(pool)
	if c.lease != DefaultLease || c.renew != DefaultLease/3 || c.retry != DefaultRetryInterval || c.prefix != "" {
		t.Errorf("defaults: lease %v renew %v retry %v prefix %q", c.lease, c.renew, c.retry, c.prefix)
	}
	c = New(pool, WithLease(time.Second))
	if c.renew != time.Second/3 {
		t.Errorf("renew %v, want a third of the lease", c.renew)
	}
	for name, f := range map[string]func(){
		"nil pool":             func() { New(nil) },
		"renew equal to lease": func() { New(pool, WithLease(time.Second), WithRenewInterval(time.Second)) },
		"renew above lease":    func() { New(pool, WithRenewInterval(time.Minute)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic", name)
				}
			}()
			f()
		}()
	}
}
