package coordtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// RunContract checks the core.Coordinator contract: Lock, Load and Store
// as the interface documents them.
func RunContract(t *testing.T, newBackend func(t *testing.T) Backend) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Backend)
	}{
		{"LockExcludesAcrossProcesses", lockExcludes},
		{"LockHeldPastLease", lockHeldPastLease},
		{"UnlockFreesAtOnce", unlockFreesAtOnce},
		{"CrashedHoldersLockIsFreed", crashedLockFreed},
		{"LockWaitEndsWithContext", lockWaitEndsWithContext},
		{"LoadStore", loadStore},
		{"StoredValuesExpire", storedValuesExpire},
		{"ClaimExcludesUntilReleasedOrExpired", claimExcludes},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newBackend(t)) })
	}
}

// lockExcludes: 200 goroutines spread over three processes take one lock
// in turn; never two at once, and every one gets it.
func lockExcludes(t *testing.T, b Backend) {
	coords := []core.Coordinator{b.New(t, 0), b.New(t, 0), b.New(t, 0)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 200
	var holders, maxHolders, done atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			unlock, err := coords[i%len(coords)].Lock(ctx, "smartrefresh:lock:excl")
			if err != nil {
				t.Errorf("goroutine %d: %v", i, err)
				return
			}
			h := holders.Add(1)
			for m := maxHolders.Load(); h > m && !maxHolders.CompareAndSwap(m, h); m = maxHolders.Load() {
			}
			time.Sleep(200 * time.Microsecond)
			holders.Add(-1)
			done.Add(1)
			unlock()
		})
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("up to %d goroutines held the lock at once", m)
	}
	if d := done.Load(); d != n {
		t.Errorf("%d of %d goroutines got the lock", d, n)
	}
	// Another key is independent.
	unlock, err := coords[0].Lock(ctx, "smartrefresh:lock:excl")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	other, err := coords[1].Lock(ctx, "smartrefresh:lock:other")
	if err != nil {
		t.Fatalf("a lock on another key: %v", err)
	}
	other()
}

// lockHeldPastLease: a holder keeps its lock for several leases; nobody
// else gets it meanwhile.
func lockHeldPastLease(t *testing.T, b Backend) {
	a, c := b.New(t, shortLease), b.New(t, shortLease)
	unlock, err := a.Lock(context.Background(), "smartrefresh:lock:k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*shortLease)
	defer cancel()
	if u, err := c.Lock(ctx, "smartrefresh:lock:k"); err == nil {
		u()
		t.Fatal("another process took the lock while its holder was alive: the lease was not kept")
	}
	unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := c.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("after the unlock: %v", err)
	}
	u()
}

// unlockFreesAtOnce: unlock frees the lock for the next holder without
// waiting for a lease (the default lease is much longer than the wait
// allowed here), unlock may be called twice, and a second unlock never
// frees the next holder's lock.
func unlockFreesAtOnce(t *testing.T, b Backend) {
	a, c, d := b.New(t, 0), b.New(t, 0), b.New(t, 0)
	unlockA, err := a.Lock(context.Background(), "smartrefresh:lock:k")
	if err != nil {
		t.Fatal(err)
	}
	unlockA()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	unlockC, err := c.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("the lock was not free after its unlock: %v", err)
	}
	unlockA() // again: must not touch c's lock
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if u, err := d.Lock(short, "smartrefresh:lock:k"); err == nil {
		u()
		t.Fatal("a second unlock by the previous holder freed the current holder's lock")
	}
	unlockC()
}

// crashedLockFreed: the lock of a holder that dies is free again, within
// the lease.
func crashedLockFreed(t *testing.T, b Backend) {
	a, crash := b.Crashable(t, shortLease)
	c := b.New(t, shortLease)
	if _, err := a.Lock(context.Background(), "smartrefresh:lock:k"); err != nil {
		t.Fatal(err)
	}
	crash()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := c.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("the lock of a crashed holder was not freed: %v", err)
	}
	unlock()
}

// lockWaitEndsWithContext: a wait for a held lock ends when its context
// is cancelled or reaches its deadline, with an error wrapping the
// context's; a done context takes no lock.
func lockWaitEndsWithContext(t *testing.T, b Backend) {
	a, c := b.New(t, 0), b.New(t, 0)
	unlock, err := a.Lock(context.Background(), "smartrefresh:lock:k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := c.Lock(ctx, "smartrefresh:lock:k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock cancelled while waiting: %v, want one wrapping context.Canceled", err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(dctx, "smartrefresh:lock:k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock past its deadline: %v, want one wrapping context.DeadlineExceeded", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if u, err := c.Lock(done, "smartrefresh:lock:free"); err == nil {
		u()
		t.Error("Lock with a cancelled context took the lock")
	}
	// The free lock is still free.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	u, err := a.Lock(ctx2, "smartrefresh:lock:free")
	if err != nil {
		t.Fatalf("a lock a cancelled Lock did not take: %v", err)
	}
	u()
}

// loadStore: values of any bytes round-trip between processes, are
// replaced by a later Store, and are per key; a missing key is not an
// error; a Store without a positive TTL, or with a done context, fails.
func loadStore(t *testing.T, b Backend) {
	a, c := b.New(t, 0), b.New(t, 0)
	ctx := context.Background()
	if v, ok, err := c.Load(ctx, "smartrefresh:redeemed:missing"); err != nil || ok || v != nil {
		t.Fatalf("Load of a missing key = %q, %v, %v", v, ok, err)
	}
	value := []byte("record\x00\xff\n'\";--")
	if err := a.Store(ctx, "smartrefresh:redeemed:k", value, time.Minute); err != nil {
		t.Fatal(err)
	}
	v, ok, err := c.Load(ctx, "smartrefresh:redeemed:k")
	if err != nil || !ok || !bytes.Equal(v, value) {
		t.Fatalf("Load in another process = %q, %v, %v", v, ok, err)
	}
	if err := c.Store(ctx, "smartrefresh:redeemed:k", []byte("newer"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.Load(ctx, "smartrefresh:redeemed:k"); err != nil || !ok || string(v) != "newer" {
		t.Errorf("Load after a second Store = %q, %v, %v", v, ok, err)
	}
	if _, ok, _ := a.Load(ctx, "smartrefresh:redeemed:k2"); ok {
		t.Error("a value under another key")
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := a.Store(ctx, "smartrefresh:redeemed:bad", []byte("v"), ttl); err == nil {
			t.Errorf("Store with ttl %v succeeded", ttl)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := a.Load(cctx, "smartrefresh:redeemed:k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
	if err := a.Store(cctx, "smartrefresh:redeemed:k", []byte("v"), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Store with a cancelled context: %v", err)
	}

	// Concurrent stores and loads of many keys, from two processes.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			k := fmt.Sprintf("smartrefresh:redeemed:c%d", i%20)
			if err := []core.Coordinator{a, c}[i%2].Store(ctx, k, []byte(k), time.Minute); err != nil {
				t.Error(err)
			}
			if v, ok, err := []core.Coordinator{c, a}[i%2].Load(ctx, k); err != nil || !ok || string(v) != k {
				t.Errorf("concurrent Load of %s = %q, %v, %v", k, v, ok, err)
			}
		})
	}
	wg.Wait()
}

// storedValuesExpire: a value is gone after its TTL.
func storedValuesExpire(t *testing.T, b Backend) {
	a := b.New(t, 0)
	ctx := context.Background()
	if err := a.Store(ctx, "smartrefresh:redeemed:short", []byte("x"), 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Load(ctx, "smartrefresh:redeemed:short"); !ok || err != nil {
		t.Fatalf("a value stored for 200 ms is not there at once: %v", err)
	}
	time.Sleep(600 * time.Millisecond)
	if _, ok, err := a.Load(ctx, "smartrefresh:redeemed:short"); ok || err != nil {
		t.Errorf("a value stored for 200 ms is still there after 600 ms (err %v)", err)
	}
}

// claimExcludes: one claim of a key at a time, whoever asks (100
// goroutines over three processes: exactly one gets it); Load reports it;
// release frees it at once, and a release of an older claim does not free
// a newer one; an unreleased claim expires after its ttl, and not before,
// whatever the lock of the same name does.
func claimExcludes(t *testing.T, b Backend) {
	coords := []core.Coordinator{b.New(t, shortLease), b.New(t, shortLease), b.New(t, shortLease)}
	ctx := context.Background()
	const key = "smartrefresh:sending:k"
	var won atomic.Int64
	releases := make(chan func(), 100)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			release, ok, err := coords[i%3].Claim(ctx, key, time.Minute)
			if err != nil {
				t.Errorf("Claim: %v", err)
				return
			}
			if ok {
				won.Add(1)
				releases <- release
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of 100 concurrent claims succeeded, want 1", n)
	}
	first := <-releases
	if _, ok, err := coords[1].Load(ctx, key); !ok || err != nil {
		t.Errorf("Load of a live claim: %v, %v", ok, err)
	}
	first()
	if _, ok, err := coords[1].Load(ctx, key); ok || err != nil {
		t.Errorf("Load of a released claim: %v, %v", ok, err)
	}
	second, ok, err := coords[2].Claim(ctx, key, 2*time.Second)
	if err != nil || !ok {
		t.Fatalf("a claim after the release: %v, %v", ok, err)
	}
	first() // again, and stale: must not free the second claim
	if _, ok, _ := coords[0].Claim(ctx, key, time.Minute); ok {
		t.Fatal("the first claim's second release freed the second claim")
	}
	second()

	// Expiry, and no earlier: the claim outlives the lock of the same
	// name, whose lease runs out with its holder gone.
	_, ok, err = coords[0].Claim(ctx, key, 4*shortLease)
	if err != nil || !ok {
		t.Fatalf("Claim: %v, %v", ok, err)
	}
	time.Sleep(2 * shortLease)
	if _, ok, _ := coords[1].Claim(ctx, key, time.Minute); ok {
		t.Fatal("a claim ended before its ttl")
	}
	time.Sleep(3 * shortLease)
	release, ok, err := coords[1].Claim(ctx, key, time.Minute)
	if err != nil || !ok {
		t.Fatalf("a claim after the earlier one expired: %v, %v", ok, err)
	}
	release()
	if _, ok, err := coords[0].Claim(ctx, key, 0); ok || err == nil {
		t.Errorf("Claim without a positive ttl: %v, %v", ok, err)
	}
}
