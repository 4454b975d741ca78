package pgcoord

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testCoordinator(t *testing.T, prefix string, opts ...Option) *Coordinator {
	t.Helper()
	return New(NewTestPool(t), append([]Option{WithPrefix(prefix), WithRetryInterval(5 * time.Millisecond),
		WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
}

// advisoryLocks counts the advisory locks the server's sessions hold on id.
func advisoryLocks(t *testing.T, pool *pgxpool.Pool, id int64) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
AND ((classid::bigint << 32) | objid::bigint) = $1`, id).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The lock is an advisory lock on one connection, kept out of the pool
// while held, freed with pg_advisory_unlock on that connection, which then
// goes back to the pool.
func TestLockIsAnAdvisoryLockOnOneConnection(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix)
	unlock, err := c.Lock(context.Background(), "smartrefresh:lock:k")
	if err != nil {
		t.Fatal(err)
	}
	id := c.lockID(prefix + "smartrefresh:lock:k")
	if n := advisoryLocks(t, pool, id); n != 1 {
		t.Errorf("%d advisory locks held on the key's id, want 1", n)
	}
	if n := c.pool.Stat().AcquiredConns(); n != 1 {
		t.Errorf("%d connections out of the pool while the lock is held, want 1", n)
	}
	var holder string
	var epochIsNow bool
	if err := pool.QueryRow(context.Background(), "SELECT holder, epoch = pg_postmaster_start_time() FROM "+c.locks+" WHERE key = $1",
		prefix+"smartrefresh:lock:k").Scan(&holder, &epochIsNow); err != nil || holder == "" || !epochIsNow {
		t.Errorf("claim row: holder set %v, epoch of this server start %v, err %v", holder != "", epochIsNow, err)
	}
	unlock()
	if n := advisoryLocks(t, pool, id); n != 0 {
		t.Errorf("%d advisory locks held after unlock", n)
	}
	if n := c.pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("%d connections still out of the pool after unlock", n)
	}
	var rows int
	pool.QueryRow(context.Background(), "SELECT count(*) FROM "+c.locks+" WHERE key = $1", prefix+"smartrefresh:lock:k").Scan(&rows)
	if rows != 0 {
		t.Errorf("the claim row is still there after unlock")
	}
}

// A crashed holder's lock ends with its connection: the next holder does
// not wait for the lease (a minute here).
func TestCrashedHoldersLockEndsWithItsConnection(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	a := testCoordinator(t, prefix, WithLease(time.Minute))
	b := testCoordinator(t, prefix, WithLease(time.Minute))
	if _, err := a.Lock(context.Background(), "smartrefresh:lock:k"); err != nil {
		t.Fatal(err)
	}
	Crash(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	unlock, err := b.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("the crashed holder's lock was not freed with its connection: %v", err)
	}
	unlock()
	t.Logf("taken %v after the holder's connection ended (lease 1 min)", time.Since(start).Round(time.Millisecond))
}

// The control of coordtest's restart test: with the advisory lock alone, a
// restart of the server frees the lock of a holder that is still alive (in
// its token call), and another replica takes it at once. With the claim
// row, it does not.
func TestRestartFreesAdvisoryLockAloneControl(t *testing.T) {
	NewTestPool(t)
	url, restart := PrivateServer(t)
	for _, claims := range []bool{false, true} {
		pool := NewTestPool(t, url)
		prefix := KeyPrefix(t, pool)
		opts := []Option{WithPrefix(prefix), WithRetryInterval(5 * time.Millisecond), WithLogger(slog.New(slog.DiscardHandler))}
		if !claims {
			opts = append(opts, WithoutClaims())
		}
		a, b := New(NewTestPool(t, url), opts...), New(NewTestPool(t, url), opts...)
		unlockA, err := a.Lock(context.Background(), "smartrefresh:lock:k")
		if err != nil {
			t.Fatal(err)
		}
		restart(t)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		unlockB, err := b.Lock(ctx, "smartrefresh:lock:k")
		cancel()
		switch {
		case !claims && err != nil:
			t.Fatalf("without claims, B did not get the lock after the restart (%v): the restart test would not catch the bug", err)
		case !claims:
			t.Log("without claims: B took the lock A still holds, after the restart")
			unlockB()
		case err == nil:
			unlockB()
			t.Fatal("with claims, B took the lock A still holds, after the restart")
		}
		unlockA()
		if claims {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u, err := b.Lock(ctx, "smartrefresh:lock:k")
			cancel()
			if err != nil {
				t.Fatalf("after A's unlock, B could not take the lock: %v", err)
			}
			u()
		}
	}
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

// WithMaxLocks: a Coordinator holds at most that many locks (connections)
// at once.
func TestMaxLocks(t *testing.T) {
	pool := NewTestPool(t)
	prefix := KeyPrefix(t, pool)
	c := testCoordinator(t, prefix, WithMaxLocks(1))
	unlock, err := c.Lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(ctx, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second lock beyond WithMaxLocks(1): %v, want a wait to the deadline", err)
	}
	unlock()
	u, err := c.Lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	u()
	if d := New(pool); d.maxLocks != 4 {
		t.Errorf("default max locks %d with an 8-connection pool, want 4", d.maxLocks)
	}
}

// With the database unreachable, every call fails (Lock after the
// unavailable wait), and no error or log holds a stored value.
func TestDatabaseDownErrorsHoldNoValue(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	logs := &syncBuffer{}
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
