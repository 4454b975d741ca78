package pgcoord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/core"
)

// Defaults of the Options.
const (
	DefaultTablePrefix     = "smartrefresh"
	DefaultLease           = 10 * time.Second
	DefaultRetryInterval   = 25 * time.Millisecond
	DefaultUnavailableWait = 5 * time.Second
	DefaultCleanupInterval = 5 * time.Minute
)

// releaseTimeout bounds the statements that free a lock, which run on no
// caller's context; maxBackoff caps the wait between two attempts while
// the database fails.
const (
	releaseTimeout = 5 * time.Second
	maxBackoff     = time.Second
)

// Coordinator is a core.Coordinator on PostgreSQL. It is safe for
// concurrent use; create one per process (per pool) and give it to every
// core.Config of that process.
type Coordinator struct {
	pool            *pgxpool.Pool
	prefix          string
	tablePrefix     string
	records, locks  string // quoted table names
	lease           time.Duration
	renew           time.Duration
	retry           time.Duration
	unavailableWait time.Duration
	cleanupInterval time.Duration
	manualSchema    bool
	logger          *slog.Logger

	migrateMu sync.Mutex
	migrated  bool

	misconfigured sync.Once // logs the first ErrMisconfigured (classify)

	cleanupMu   sync.Mutex
	lastCleanup time.Time

	heldMu  sync.Mutex
	held    map[*held]struct{}
	crashed atomic.Bool // tests only: the process is dead
}

var _ core.Coordinator = (*Coordinator)(nil)

// An Option configures a Coordinator.
type Option func(*Coordinator)

// WithPrefix puts prefix in front of every key the Coordinator reads or
// writes (core's keys start with "smartrefresh:"), for example to keep
// several apps apart in one database. Default empty.
func WithPrefix(prefix string) Option { return func(c *Coordinator) { c.prefix = prefix } }

// WithTablePrefix names the two tables: prefix+"_records" and
// prefix+"_locks", optionally schema-qualified ("app.smartrefresh").
// Default DefaultTablePrefix. New panics on a name that is not a plain SQL
// identifier.
func WithTablePrefix(prefix string) Option { return func(c *Coordinator) { c.tablePrefix = prefix } }

// WithLease sets how long a lock's claim row outlives its holder's silence:
// a crashed holder's lock is free again after at most the lease. Safety
// does not depend on it (see the package documentation). Default
// DefaultLease.
func WithLease(lease time.Duration) Option { return func(c *Coordinator) { c.lease = lease } }

// WithRenewInterval sets how often a holder extends its claim. Default a
// third of the lease; it must be shorter than the lease (New panics
// otherwise).
func WithRenewInterval(d time.Duration) Option { return func(c *Coordinator) { c.renew = d } }

// WithRetryInterval sets how long Lock waits, on average, between two
// attempts at a lock another process holds (jittered by ±50 %). Default
// DefaultRetryInterval.
func WithRetryInterval(d time.Duration) Option { return func(c *Coordinator) { c.retry = d } }

// WithUnavailableWait sets how long Lock keeps trying while the database
// cannot be reached (a restart, a failover) before it fails; the refresh
// then fails as transient without sending its refresh token. Default
// DefaultUnavailableWait; the refresh's own deadline always wins.
func WithUnavailableWait(d time.Duration) Option {
	return func(c *Coordinator) { c.unavailableWait = d }
}

// WithCleanupInterval sets how often, at most, a Store also deletes
// expired rows. Default DefaultCleanupInterval.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *Coordinator) { c.cleanupInterval = d }
}

// WithMaxLocks has no effect any more: a lock holds no connection (see
// Lock), so locks cannot take the pool's connections away from the
// records and the app's sessions, and no pool size can deadlock them.
//
// Deprecated: locks hold no connection; remove the option.
func WithMaxLocks(n int) Option { return func(*Coordinator) {} }

// WithManualSchema stops the Coordinator from creating its tables on first
// use: run Schema's statements in your migrations instead, for example
// when the app's database role may not create tables.
func WithManualSchema() Option { return func(c *Coordinator) { c.manualSchema = true } }

// WithLogger sets where the Coordinator reports a lock it lost or could
// not free, and failures it retries (slog.Default when nil). It never logs
// keys' values.
func WithLogger(l *slog.Logger) Option { return func(c *Coordinator) { c.logger = l } }

var tableName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]{0,50}$`)

// New returns a Coordinator on pool, which may be the pool of the app's
// scs pgxstore. It panics if pool is nil, the table prefix is not a plain
// identifier, or the renew interval is not shorter than the lease.
func New(pool *pgxpool.Pool, opts ...Option) *Coordinator {
	if pool == nil {
		panic("pgcoord: New with a nil pool")
	}
	c := &Coordinator{pool: pool, tablePrefix: DefaultTablePrefix, held: map[*held]struct{}{}}
	for _, o := range opts {
		o(c)
	}
	if !tableName.MatchString(c.tablePrefix) {
		panic(fmt.Sprintf("pgcoord: table prefix %q is not a plain SQL identifier", c.tablePrefix))
	}
	c.records = quoteTable(c.tablePrefix + "_records")
	c.locks = quoteTable(c.tablePrefix + "_locks")
	if c.lease < time.Millisecond {
		c.lease = DefaultLease
	}
	if c.renew < time.Millisecond {
		c.renew = c.lease / 3
	}
	if c.renew >= c.lease {
		panic(fmt.Sprintf("pgcoord: renew interval %v is not shorter than the lease %v", c.renew, c.lease))
	}
	if c.retry < time.Millisecond {
		c.retry = DefaultRetryInterval
	}
	if c.unavailableWait <= 0 {
		c.unavailableWait = DefaultUnavailableWait
	}
	if c.cleanupInterval <= 0 {
		c.cleanupInterval = DefaultCleanupInterval
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

func quoteTable(name string) string {
	return pgx.Identifier(strings.Split(name, ".")).Sanitize()
}

// Schema returns the statements that create the Coordinator's tables and
// index, idempotently: what it runs on first use, unless
// WithManualSchema. With the default table prefix:
//
//	CREATE TABLE IF NOT EXISTS "smartrefresh_records" (
//		key        text        PRIMARY KEY,
//		value      bytea       NOT NULL,
//		expires_at timestamptz NOT NULL
//	);
//	CREATE INDEX IF NOT EXISTS "smartrefresh_records_expires_at" ON "smartrefresh_records" (expires_at);
//	CREATE TABLE IF NOT EXISTS "smartrefresh_locks" (
//		key        text        PRIMARY KEY,
//		holder     text        NOT NULL,
//		epoch      timestamptz NOT NULL,
//		expires_at timestamptz NOT NULL
//	);
func (c *Coordinator) Schema() string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
	key        text        PRIMARY KEY,
	value      bytea       NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS %[3]s ON %[1]s (expires_at);
CREATE TABLE IF NOT EXISTS %[2]s (
	key        text        PRIMARY KEY,
	holder     text        NOT NULL,
	epoch      timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
`, c.records, c.locks, pgx.Identifier{lastPart(c.tablePrefix) + "_records_expires_at"}.Sanitize())
}

func lastPart(name string) string { return name[strings.LastIndexByte(name, '.')+1:] }

// migrationLockID is the transaction-level advisory lock that keeps
// concurrent first uses from creating the tables at the same time.
const migrationLockID = 0x736d7274_72667368 // "smrtrfsh"

// Migrate makes sure the tables exist, once per Coordinator: when both do
// (created by a migration, say), it creates nothing, so the database role
// needs no CREATE privilege; otherwise it runs Schema, under a lock_timeout
// and a statement_timeout of its own. Lock, Load, Store and Claim call it,
// unless WithManualSchema. A role that may not create the missing tables
// gets an error matching core.ErrMisconfigured (500, not transient),
// logged once with the fix.
func (c *Coordinator) Migrate(ctx context.Context) error {
	c.migrateMu.Lock()
	defer c.migrateMu.Unlock()
	if c.migrated {
		return nil
	}
	var exist bool
	err := c.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL`, c.records, c.locks).Scan(&exist)
	if err == nil && !exist {
		err = pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrationTimeouts); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLockID)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, c.Schema())
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("pgcoord: creating the tables: %w", c.classify(err))
	}
	c.migrated = true
	return nil
}

// migrationTimeouts keep the creation of the tables from waiting behind
// another session's lock, or running, for long.
const migrationTimeouts = `SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '15s'`

func (c *Coordinator) ready(ctx context.Context) error {
	if c.crashed.Load() {
		return errCrashed
	}
	if c.manualSchema {
		return nil
	}
	return c.Migrate(ctx)
}

// ErrSchema is matched (besides core.ErrMisconfigured) by the errors of a
// Coordinator whose tables are missing, or that the database role may not
// use or create: no retry helps, the setup must change.
var ErrSchema = fmt.Errorf("%w: pgcoord: the tables are missing or the database role may not use them", core.ErrMisconfigured)

// classify returns err, as ErrSchema when PostgreSQL says the tables are
// missing or the role lacks a privilege, and logs the first such error
// with the fix.
func (c *Coordinator) classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "42P01", "42703", "42501": // undefined_table, undefined_column, insufficient_privilege
	default:
		return err
	}
	c.misconfigured.Do(func() {
		c.logger.Error("pgcoord: the Coordinator's tables are missing or its database role may not use them: run Coordinator.Schema() as a role that may create tables (or let the Coordinator create them), and GRANT SELECT, INSERT, UPDATE, DELETE on both tables to the app's role",
			"tables", c.records+", "+c.locks, "error", err)
	})
	return fmt.Errorf("%w: %w", ErrSchema, err)
}

var errCrashed = errors.New("pgcoord: the process crashed (test)")

// Lock takes the lock named key: a claim row in the locks table (key, a
// random holder value, an expiry a lease ahead), inserted by one statement
// that takes the row over only if it expired. It is tried again every retry
// interval (jittered) while another holder's row is live, until it succeeds
// or ctx is done. No connection is held while the lock is: each attempt,
// each extension (every renew interval) and the unlock (a delete of this
// holder's row) is one statement on any connection of the pool. unlock may
// be called more than once, from any goroutine.
//
// A failure to reach the database is tried again with backoff for up to
// the unavailable wait. The error wraps ctx's error when ctx ended the
// wait; either way the lock is not held.
func (c *Coordinator) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l, err := c.acquire(ctx, key)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// A held lock.
type held struct {
	c      *Coordinator
	key    string // with the prefix
	holder string // this holder's random value

	stop    context.CancelFunc
	renewed chan struct{}
	once    sync.Once
}

func (c *Coordinator) acquire(ctx context.Context, key string) (*held, error) {
	k := c.prefix + key
	holder := rand.Text()
	if ctx.Err() != nil {
		return nil, c.ctxError(ctx, nil)
	}
	var (
		lastErr     error
		failingFrom time.Time
		backoff     = c.retry
	)
	for {
		if ctx.Err() != nil {
			return nil, c.ctxError(ctx, lastErr)
		}
		ok, err := c.tryLock(ctx, k, holder)
		if ok {
			l := &held{c: c, key: k, holder: holder}
			c.heldMu.Lock()
			c.held[l] = struct{}{}
			c.heldMu.Unlock()
			renewCtx, stop := context.WithCancel(context.Background())
			l.stop, l.renewed = stop, make(chan struct{})
			go l.renewLoop(renewCtx)
			return l, nil
		}
		wait := c.retry/2 + mathrand.N(c.retry+1)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, c.ctxError(ctx, err)
		case errors.Is(err, core.ErrMisconfigured):
			return nil, fmt.Errorf("pgcoord: lock: %w", err)
		case err != nil:
			lastErr = err
			if failingFrom.IsZero() {
				failingFrom = time.Now()
			}
			if errors.Is(err, errCrashed) || time.Since(failingFrom) >= c.unavailableWait {
				return nil, fmt.Errorf("pgcoord: lock: %w", err)
			}
			c.logger.Warn("pgcoord: taking a lock failed; trying again", "error", err)
			wait = backoff/2 + mathrand.N(backoff+1)
			backoff = min(2*backoff, maxBackoff)
		default:
			lastErr, failingFrom, backoff = nil, time.Time{}, c.retry
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, c.ctxError(ctx, lastErr)
		}
	}
}

// ctxError is the error of a Lock that ctx ended; last is the failure of
// the last attempt, if it failed.
func (c *Coordinator) ctxError(ctx context.Context, last error) error {
	err := ctx.Err()
	msg := "pgcoord: lock not obtained: %w"
	args := []any{err}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		msg += " (%w)"
		args = append(args, cause)
	}
	if last != nil {
		msg += "; last attempt: %w"
		args = append(args, last)
	}
	return fmt.Errorf(msg, args...)
}

// tryLock makes one attempt: it writes this holder's claim row on key,
// unless another holder's row is there and has not expired (on the
// database's clock). A row of this holder's own (an attempt whose answer
// was lost, repeated) is taken again.
func (c *Coordinator) tryLock(ctx context.Context, key, holder string) (bool, error) {
	if err := c.ready(ctx); err != nil {
		return false, err
	}
	var one int
	// The NOT EXISTS spares a waiter the row lock ON CONFLICT takes even
	// when its WHERE fails; ON CONFLICT's WHERE decides.
	err := c.pool.QueryRow(ctx, `INSERT INTO `+c.locks+` AS l (key, holder, epoch, expires_at)
SELECT $1, $2, pg_postmaster_start_time(), now() + $3::bigint * interval '1 millisecond'
WHERE NOT EXISTS (SELECT 1 FROM `+c.locks+` WHERE key = $1 AND expires_at > now() AND holder <> $2)
ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, epoch = EXCLUDED.epoch, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
RETURNING 1`, key, holder, c.lease.Milliseconds()).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, c.classify(err)
}

// renewLoop extends the claim's expiry every renew interval until ctx is
// cancelled (by unlock) or it finds the claim taken over. A failed
// extension is tried again soon, with backoff, not only at the next tick.
func (l *held) renewLoop(ctx context.Context) {
	defer close(l.renewed)
	c := l.c
	wait, failures := c.renew, 0
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		kept, err := l.extend(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			if errors.Is(err, core.ErrMisconfigured) {
				c.logger.Error("pgcoord: extending a lock's claim failed", "error", err)
			} else if failures == 1 {
				c.logger.Warn("pgcoord: extending a lock's claim failed; trying again", "error", err)
			}
			wait = min(c.renew/2, 10*time.Millisecond<<min(failures, 10))
			continue
		case !kept:
			c.logger.Error("pgcoord: a held lock was lost: its claim expired before it could be extended, and another process took it over (the refresh token's claim still keeps it from being sent twice)",
				"lease", c.lease)
			return
		}
		wait, failures = c.renew, 0
	}
}

// extend makes one attempt at extending the claim.
func (l *held) extend(ctx context.Context) (kept bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.c.renew)
	defer cancel()
	tag, err := l.c.pool.Exec(ctx, `UPDATE `+l.c.locks+` SET expires_at = now() + $3::bigint * interval '1 millisecond'
WHERE key = $1 AND holder = $2`, l.key, l.holder, l.c.lease.Milliseconds())
	return tag.RowsAffected() == 1, l.c.classify(err)
}

func (l *held) unlock() {
	l.once.Do(func() {
		c := l.c
		l.stop()
		<-l.renewed
		c.heldMu.Lock()
		delete(c.held, l)
		c.heldMu.Unlock()
		if c.crashed.Load() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		tag, err := c.pool.Exec(ctx, `DELETE FROM `+c.locks+` WHERE key = $1 AND holder = $2`, l.key, l.holder)
		switch {
		case err != nil:
			c.logger.Warn("pgcoord: freeing a lock failed; it is freed when its lease runs out", "error", c.classify(err), "lease", c.lease)
		case tag.RowsAffected() == 0:
			c.logger.Warn("pgcoord: a lock was no longer held when it was unlocked: another process had taken it over")
		}
	})
}

// Claim claims key for ttl (rounded up to a microsecond, on the database's
// clock): a row in the records table holding a random value, inserted
// unless a live row is there. It is never extended; release deletes it if
// it still holds this claim's value. Load reports a live claim.
func (c *Coordinator) Claim(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	if ttl <= 0 {
		return nil, false, ErrTTL
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("pgcoord: claim: %w", err)
	}
	if err := c.ready(ctx); err != nil {
		return nil, false, fmt.Errorf("pgcoord: claim: %w", err)
	}
	k, value := c.prefix+key, []byte(rand.Text())
	us := int64((ttl + time.Microsecond - 1) / time.Microsecond)
	var one int
	err = c.pool.QueryRow(ctx, `INSERT INTO `+c.records+` AS r (key, value, expires_at)
VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
WHERE r.expires_at <= now()
RETURNING 1`, k, value, us).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pgcoord: claim: %w", c.classify(err))
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if c.crashed.Load() {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			if _, err := c.pool.Exec(ctx, `DELETE FROM `+c.records+` WHERE key = $1 AND value = $2`, k, value); err != nil {
				c.logger.Warn("pgcoord: releasing a claim failed; it ends when it expires", "error", c.classify(err))
			}
		})
	}, true, nil
}

// Load returns the value stored under key, and false if there is none or
// it expired.
func (c *Coordinator) Load(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("pgcoord: load: %w", err)
	}
	if err := c.ready(ctx); err != nil {
		return nil, false, fmt.Errorf("pgcoord: load: %w", err)
	}
	var v []byte
	err := c.pool.QueryRow(ctx, `SELECT value FROM `+c.records+` WHERE key = $1 AND expires_at > now()`, c.prefix+key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pgcoord: load: %w", c.classify(err))
	}
	return v, true, nil
}

// ErrTTL is the error of a Store without a positive ttl: every value the
// Coordinator stores expires.
var ErrTTL = errors.New("pgcoord: store: ttl must be positive")

// Store stores value under key for ttl (rounded up to a microsecond, on
// the database's clock), replacing any earlier value. At most once per
// cleanup interval it also deletes expired rows.
func (c *Coordinator) Store(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrTTL
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgcoord: store: %w", err)
	}
	if err := c.ready(ctx); err != nil {
		return fmt.Errorf("pgcoord: store: %w", err)
	}
	us := int64((ttl + time.Microsecond - 1) / time.Microsecond)
	_, err := c.pool.Exec(ctx, `INSERT INTO `+c.records+` (key, value, expires_at)
VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`, c.prefix+key, value, us)
	if err != nil {
		return fmt.Errorf("pgcoord: store: %w", c.classify(err))
	}
	c.cleanup(ctx)
	return nil
}

// cleanup deletes expired records, and claims expired for a minute, a
// thousand of each at most, if it has not done so for a cleanup interval.
func (c *Coordinator) cleanup(ctx context.Context) {
	c.cleanupMu.Lock()
	due := time.Since(c.lastCleanup) >= c.cleanupInterval
	if due {
		c.lastCleanup = time.Now()
	}
	c.cleanupMu.Unlock()
	if !due {
		return
	}
	for _, q := range []string{
		`DELETE FROM ` + c.records + ` WHERE key IN (SELECT key FROM ` + c.records + ` WHERE expires_at <= now() LIMIT 1000)`,
		`DELETE FROM ` + c.locks + ` WHERE key IN (SELECT key FROM ` + c.locks + ` WHERE expires_at <= now() - interval '1 minute' LIMIT 1000)`,
	} {
		if _, err := c.pool.Exec(ctx, q); err != nil {
			c.logger.Warn("pgcoord: deleting expired rows failed", "error", err)
			return
		}
	}
}
