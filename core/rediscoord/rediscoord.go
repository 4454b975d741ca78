package rediscoord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/smartrefresh/smartrefresh/core"
)

// Defaults of the Options.
const (
	DefaultLease         = 10 * time.Second
	DefaultRetryInterval = 25 * time.Millisecond
)

// releaseTimeout bounds the Redis calls that free a lock, which run on no
// caller's context.
const releaseTimeout = 5 * time.Second

// Coordinator is a core.Coordinator on Redis. It is safe for concurrent
// use; create one per process (or per pool) and give it to every
// core.Config of that process.
type Coordinator struct {
	pool   *redis.Pool
	prefix string
	lease  time.Duration
	renew  time.Duration
	retry  time.Duration
	logger *slog.Logger

	noRenewal bool // tests only: the oauth2-proxy bug, on purpose
}

var _ core.Coordinator = (*Coordinator)(nil)

// An Option configures a Coordinator.
type Option func(*Coordinator)

// WithPrefix puts prefix in front of every key the Coordinator reads or
// writes, for example to keep several apps apart on one Redis. The keys
// core names already start with "smartrefresh:"; the default prefix is
// empty.
func WithPrefix(prefix string) Option {
	return func(c *Coordinator) { c.prefix = prefix }
}

// WithLease sets how long a lock survives its holder's silence: a holder
// renews it every renew interval while it lives, and a holder that crashed
// (or cannot reach Redis) loses it after at most lease. Default
// DefaultLease; values below a millisecond mean the default.
func WithLease(lease time.Duration) Option {
	return func(c *Coordinator) { c.lease = lease }
}

// WithRenewInterval sets how often a held lock's lease is extended.
// Default a third of the lease; it must be shorter than the lease (New
// panics otherwise), and values below a millisecond mean the default.
func WithRenewInterval(d time.Duration) Option {
	return func(c *Coordinator) { c.renew = d }
}

// WithRetryInterval sets how long Lock waits, on average, between two
// attempts to take a lock another process holds; each wait is drawn
// between half and one and a half times it. Default DefaultRetryInterval;
// values below a millisecond mean the default.
func WithRetryInterval(d time.Duration) Option {
	return func(c *Coordinator) { c.retry = d }
}

// WithLogger sets where the Coordinator reports a lock it lost or could
// not free (slog.Default when nil). It never logs keys' values.
func WithLogger(l *slog.Logger) Option {
	return func(c *Coordinator) { c.logger = l }
}

// New returns a Coordinator on pool, which may be the pool of the app's
// scs redisstore. Give the pool a Dial with read and write timeouts
// (redis.DialReadTimeout, redis.DialWriteTimeout) so that no call hangs on
// a dead connection. New panics if pool is nil or the renew interval is not
// shorter than the lease.
func New(pool *redis.Pool, opts ...Option) *Coordinator {
	if pool == nil {
		panic("rediscoord: New with a nil pool")
	}
	c := &Coordinator{pool: pool}
	for _, o := range opts {
		o(c)
	}
	if c.lease < time.Millisecond {
		c.lease = DefaultLease
	}
	if c.renew < time.Millisecond {
		c.renew = c.lease / 3
	}
	if c.renew >= c.lease {
		panic(fmt.Sprintf("rediscoord: renew interval %v is not shorter than the lease %v", c.renew, c.lease))
	}
	if c.retry < time.Millisecond {
		c.retry = DefaultRetryInterval
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// Lua scripts: each acts on the lock only while it still holds this
// holder's random value, so a holder whose lease expired can neither extend
// nor delete the lock another holder took since.
var (
	renewScript = redis.NewScript(1, `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	releaseScript = redis.NewScript(1, `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// Lock takes the lock named key: SET key <random value> NX PX <lease>,
// tried again every retry interval (with jitter) until it succeeds or ctx
// is done. While held, the lease is extended every renew interval, however
// long the holder keeps it. unlock stops the renewal and deletes the lock
// if it is still this holder's; it may be called more than once and from
// any goroutine.
//
// The error wraps ctx's error when ctx ended the wait, and otherwise is a
// Redis failure; either way the lock is not held.
func (c *Coordinator) Lock(ctx context.Context, key string) (unlock func(), err error) {
	l, err := c.acquire(ctx, key)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// A held lock.
type held struct {
	c     *Coordinator
	key   string // with the prefix
	value string // this holder's random value

	stop    context.CancelFunc // stops the renewal
	renewed chan struct{}      // closed when the renewal has stopped
	once    sync.Once
}

func (c *Coordinator) acquire(ctx context.Context, key string) (*held, error) {
	k := c.prefix + key
	value := rand.Text() // 128 random bits
	for {
		if err := ctx.Err(); err != nil {
			return nil, c.ctxError(ctx)
		}
		ok, err := c.trySet(ctx, k, value)
		if err != nil {
			// The SET may have reached Redis even though its answer did
			// not reach us: free the lock in case it is ours, rather than
			// leave every other replica waiting for the lease.
			c.release(k, value)
			if ctx.Err() != nil {
				return nil, c.ctxError(ctx)
			}
			return nil, fmt.Errorf("rediscoord: lock: %w", err)
		}
		if ok {
			break
		}
		wait := c.retry/2 + mathrand.N(c.retry+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, c.ctxError(ctx)
		}
	}
	renewCtx, stop := context.WithCancel(context.Background())
	l := &held{c: c, key: k, value: value, stop: stop, renewed: make(chan struct{})}
	if c.noRenewal {
		close(l.renewed)
	} else {
		go l.renewLoop(renewCtx)
	}
	return l, nil
}

// ctxError is the error of a Lock that ctx ended.
func (c *Coordinator) ctxError(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("rediscoord: lock not obtained: %w (%w)", err, cause)
	}
	return fmt.Errorf("rediscoord: lock not obtained: %w", err)
}

// trySet makes one attempt at taking the lock.
func (c *Coordinator) trySet(ctx context.Context, key, value string) (bool, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_, err = redis.String(redis.DoContext(conn, ctx, "SET", key, value, "NX", "PX", c.lease.Milliseconds()))
	if errors.Is(err, redis.ErrNil) {
		return false, nil // held by another
	}
	return err == nil, err
}

// renewLoop extends the lease every renew interval until ctx is cancelled
// (by unlock) or it finds the lock lost.
func (l *held) renewLoop(ctx context.Context) {
	defer close(l.renewed)
	c := l.c
	t := time.NewTicker(c.renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		kept, err := l.extend(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Try again at the next tick: the lease has not necessarily
			// run out yet.
			c.logger.Warn("rediscoord: extending a lock's lease failed", "error", err)
		case !kept:
			c.logger.Error("rediscoord: a held lock was lost: its lease ran out before it could be extended, so another process may have taken it",
				"lease", c.lease)
			return
		}
	}
}

// extend makes one attempt at extending the lease; kept is false when the
// lock is no longer this holder's.
func (l *held) extend(ctx context.Context) (kept bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.c.renew)
	defer cancel()
	conn, err := l.c.pool.GetContext(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	n, err := redis.Int(renewScript.DoContext(ctx, conn, l.key, l.value, l.c.lease.Milliseconds()))
	return n == 1, err
}

// stopRenewal stops extending the lease and waits until the renewal has
// stopped.
func (l *held) stopRenewal() {
	l.stop()
	<-l.renewed
}

func (l *held) unlock() {
	l.once.Do(func() {
		l.stopRenewal()
		if freed, err := l.c.release(l.key, l.value); err == nil && !freed {
			l.c.logger.Warn("rediscoord: a lock was no longer held when it was unlocked: its lease had run out", "lease", l.c.lease)
		}
	})
}

// release deletes key if it still holds value, and reports whether it did.
// It runs on no caller's context, so that a cancelled request still frees
// its lock, bounded by releaseTimeout.
func (c *Coordinator) release(key, value string) (freed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	conn, err := c.pool.GetContext(ctx)
	if err == nil {
		defer conn.Close()
		var n int
		n, err = redis.Int(releaseScript.DoContext(ctx, conn, key, value))
		freed = n == 1
	}
	if err != nil {
		c.logger.Warn("rediscoord: freeing a lock failed; it is freed when its lease runs out", "error", err, "lease", c.lease)
	}
	return freed, err
}

// Load returns the value stored under key (GET), and false if there is
// none.
func (c *Coordinator) Load(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("rediscoord: load: %w", err)
	}
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("rediscoord: load: %w", err)
	}
	defer conn.Close()
	b, err := redis.Bytes(redis.DoContext(conn, ctx, "GET", c.prefix+key))
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("rediscoord: load: %w", err)
	}
	return b, true, nil
}

// ErrTTL is the error of a Store without a positive ttl: every value the
// Coordinator stores expires.
var ErrTTL = errors.New("rediscoord: store: ttl must be positive")

// Store stores value under key for ttl, rounded up to a millisecond (SET
// key value PX ttl). ttl must be positive.
func (c *Coordinator) Store(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrTTL
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rediscoord: store: %w", err)
	}
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return fmt.Errorf("rediscoord: store: %w", err)
	}
	defer conn.Close()
	if _, err := redis.DoContext(conn, ctx, "SET", c.prefix+key, value, "PX", ms); err != nil {
		return fmt.Errorf("rediscoord: store: %w", err)
	}
	return nil
}
