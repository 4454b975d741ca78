package pgcoord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func testCoordinator(t *testing.T, prefix string, opts ...Option) *Coordinator {
	t.Helper()
	return New(NewTestPool(t), append([]Option{WithPrefix(prefix), WithRetryInterval(5 * time.Millisecond),
		WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
}

// The lock is a claim row; no connection is out of the pool while it is
// held, and unlock deletes the row.
func TestLockHoldsNoConnection(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix)
	unlock, err := c.Lock(context.Background(), "smartrefresh:lock:k")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections out of the pool while the lock is held, want 0", n)
	}
	var holder string
	if err := pool.QueryRow(context.Background(), "SELECT holder FROM "+c.locks+" WHERE key = $1 AND expires_at > now()",
		prefix+"smartrefresh:lock:k").Scan(&holder); err != nil || holder == "" {
		t.Errorf("claim row: holder set %v, err %v", holder != "", err)
	}
	unlock()
	var rows int
	pool.QueryRow(context.Background(), "SELECT count(*) FROM "+c.locks+" WHERE key = $1", prefix+"smartrefresh:lock:k").Scan(&rows)
	if rows != 0 {
		t.Errorf("the claim row is still there after unlock")
	}
}

// A crashed holder's lock is free again within its lease.
func TestCrashedHoldersLockFreedWithinLease(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	const lease = 300 * time.Millisecond
	a := testCoordinator(t, prefix, WithLease(lease))
	b := testCoordinator(t, prefix, WithLease(lease))
	if _, err := a.Lock(context.Background(), "smartrefresh:lock:k"); err != nil {
		t.Fatal(err)
	}
	Crash(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	unlock, err := b.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("the crashed holder's lock was not freed: %v", err)
	}
	unlock()
	if d := time.Since(start); d > lease+200*time.Millisecond {
		t.Errorf("taken %v after the holder crashed, want within the %v lease", d, lease)
	}
}

// Issue 21, item 4: processes waiting for another process's lock hold
// nothing of their own: an unrelated lock nobody holds is taken at once,
// on a pool of two connections (pgxpool's default on one CPU is four).
// Before: a waiter kept one of the process's lock slots (half the pool),
// and the unrelated lock waited until the others' deadline.
func TestWaitersHoldNoConnection(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	small := func() *pgxpool.Pool {
		cfg := pool.Config()
		cfg.MaxConns = 2
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	opts := []Option{WithPrefix(prefix), WithRetryInterval(5 * time.Millisecond), WithLogger(slog.New(slog.DiscardHandler))}
	other, waiting := New(small(), opts...), New(small(), opts...)
	unlock, err := other.Lock(context.Background(), "held")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if u, err := waiting.Lock(ctx, "held"); err == nil {
				u()
				t.Error("a waiter took a held lock")
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	u, err := waiting.Lock(ctx, "free")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("an unrelated lock, with 10 waiters in the process: %v (after %v)", err, took)
	}
	u()
	t.Logf("an unrelated lock with 10 waiters in the process: %v", took.Round(time.Millisecond))
	if took > 500*time.Millisecond {
		t.Errorf("an unrelated lock took %v with 10 waiters in the process", took)
	}
	cancel()
	wg.Wait()
}

// Issue 21, item 6: a pool of one connection (with or without the old
// WithMaxLocks(1)) works: holding a lock holds no connection, so the
// records can be read and written under it. Before: the lock kept the only
// connection and every refresh waited until its deadline.
func TestPoolOfOneConnection(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	cfg := pool.Config()
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(one.Close)
	c := New(one, WithPrefix(prefix), WithMaxLocks(1), WithLogger(slog.New(slog.DiscardHandler)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			key := fmt.Sprint("k", i%4)
			unlock, err := c.Lock(ctx, "lock:"+key)
			if err != nil {
				t.Errorf("lock: %v", err)
				return
			}
			defer unlock()
			if _, _, err := c.Load(ctx, key); err != nil {
				t.Errorf("load under the lock: %v", err)
			}
			release, ok, err := c.Claim(ctx, "claim:"+key, time.Minute)
			if err != nil || !ok {
				t.Errorf("claim under the lock: %v, %v", ok, err)
				return
			}
			if err := c.Store(ctx, key, []byte("v"), time.Minute); err != nil {
				t.Errorf("store under the lock: %v", err)
			}
			release()
		})
	}
	wg.Wait()
}

func TestCleanupDeletesExpiredRows(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix, WithCleanupInterval(time.Millisecond))
	ctx := context.Background()
	if err := c.Store(ctx, "old", []byte("x"), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := c.Store(ctx, "new", []byte("y"), time.Minute); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+c.records+" WHERE key = $1", prefix+"old").Scan(&n); err != nil || n != 0 {
		t.Errorf("the expired row is still in the table (%d, %v)", n, err)
	}
	if _, ok, _ := c.Load(ctx, "new"); !ok {
		t.Error("the live row was deleted")
	}
}

// WithManualSchema: no table is created; Schema is the migration to run.
func TestManualSchema(t *testing.T) {
	pool := NewTestPool(t)
	tables := "smartrefresh_test_" + strings.ToLower(randText(8))
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+tables+"_records, "+tables+"_locks")
	})
	c := New(NewTestPool(t), WithTablePrefix(tables), WithManualSchema())
	ctx := context.Background()
	err := c.Store(ctx, "k", []byte("v"), time.Minute)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("Store without the tables: %v, want undefined_table", err)
	}
	if !strings.Contains(c.Schema(), `CREATE TABLE IF NOT EXISTS "`+tables+`_records"`) {
		t.Errorf("Schema:\n%s", c.Schema())
	}
	if _, err := pool.Exec(ctx, c.Schema()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, c.Schema()); err != nil {
		t.Fatalf("Schema is not idempotent: %v", err)
	}
	if err := c.Store(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	unlock, err := c.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// The first uses of many Coordinators at once create the tables once,
// without failing on each other.
func TestConcurrentMigrations(t *testing.T) {
	pool := NewTestPool(t)
	tables := "smartrefresh_test_" + strings.ToLower(randText(8))
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+tables+"_records, "+tables+"_locks")
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := New(pool, WithTablePrefix(tables))
			if err := c.Store(context.Background(), "k", []byte("v"), time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// With the database unreachable, every call fails (Lock after the
// unavailable wait), and no error or log holds a stored value.
func TestDatabaseDownErrorsHoldNoValue(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	logs := &LogBuffer{}
	c := New(pool, WithUnavailableWait(300*time.Millisecond), WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const secret = "refresh-token-record-secret"
	errs := []error{c.Store(ctx, "k", []byte(secret), time.Minute)}
	_, _, err = c.Load(ctx, "k")
	errs = append(errs, err)
	start := time.Now()
	_, err = c.Lock(ctx, "k")
	errs = append(errs, err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Lock failed after %v, want about the 300 ms unavailable wait", d)
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("call %d succeeded without a database", i)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds the value", err)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the logs hold the value")
	}
}

func TestNewValidates(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c := New(pool)
	if c.lease != DefaultLease || c.renew != DefaultLease/3 || c.retry != DefaultRetryInterval ||
		c.records != `"smartrefresh_records"` || c.locks != `"smartrefresh_locks"` {
		t.Errorf("defaults: lease %v renew %v retry %v tables %s %s", c.lease, c.renew, c.retry, c.records, c.locks)
	}
	if c := New(pool, WithTablePrefix("app.sr")); c.records != `"app"."sr_records"` {
		t.Errorf("schema-qualified table: %s", c.records)
	}
	for name, f := range map[string]func(){
		"nil pool":          func() { New(nil) },
		"injected table":    func() { New(pool, WithTablePrefix(`x"; DROP TABLE sessions; --`)) },
		"empty table":       func() { New(pool, WithTablePrefix("")) },
		"renew above lease": func() { New(pool, WithLease(time.Second), WithRenewInterval(time.Second)) },
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

func randText(n int) string { return strings.ToLower(rand.Text()[:n]) }
