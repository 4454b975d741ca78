package rediscoord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

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
	client client
	pool   *redis.Pool // with New; nil with NewGoRedis
	prefix string
	lease  time.Duration
	renew  time.Duration
	retry  time.Duration
	logger *slog.Logger

	checkOnce sync.Once   // checkEviction
	checked   atomic.Bool // checkEviction has logged what it found (tests)

	noRenewal bool // tests only: the oauth2-proxy bug, on purpose
	noClaims  bool // tests only: safety left to the lock alone
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
// a dead connection, and a TestOnBorrow that PINGs, so that it drops the
// dead connections a Redis restart leaves behind. Bound it as go-redis
// bounds its own (MaxIdle and MaxActive 10 per CPU, Wait): a pool whose
// MaxIdle is below the calls in flight dials a connection for each call
// above it and closes it after: with 300 grants due at once across 3
// replicas, that made the added p99 1.5 times as long (docs/replicas.md,
// "Pool size"). New panics if pool is nil or the renew interval is
// not shorter than the lease.
func New(pool *redis.Pool, opts ...Option) *Coordinator {
	if pool == nil {
		panic("rediscoord: New with a nil pool")
	}
	return newCoordinator(&redigoClient{pool: pool}, opts)
}

// NewGoRedis returns a Coordinator on a go-redis client (github.com/redis/go-redis/v9):
// a *redis.Client (which scs's goredisstore uses), a *redis.ClusterClient,
// a Sentinel failover client or any redis.UniversalClient. Its keys and
// scripts are those of New, and each script touches one key, so Redis
// Cluster runs it on the key's node. Give the client read and write
// timeouts (its defaults, 3 s, will do). NewGoRedis panics if client is
// nil or the renew interval is not shorter than the lease.
func NewGoRedis(client goredis.UniversalClient, opts ...Option) *Coordinator {
	if client == nil {
		panic("rediscoord: NewGoRedis with a nil client")
	}
	return newCoordinator(&goredisClient{c: client}, opts)
}

func newCoordinator(cl client, opts []Option) *Coordinator {
	c := &Coordinator{client: cl}
	if r, ok := cl.(*redigoClient); ok {
		c.pool = r.pool
	}
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
//
// renewScript takes or extends the holder's lock: it sets the lease if
// the lock holds the holder's value, or if the lock is gone altogether. So
// a Lock attempt whose answer was lost and that is repeated takes the lock
// it set, and a renewal that finds the lock gone (it expired while Redis
// was away, or a restart lost it) takes it back: its holder is still
// inside its redemption. A lock another holder took stays theirs.
const (
	renewSource = `
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
if v == false then
	redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
	return 1
end
return 0`
	releaseSource = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`
)

// Lock takes the lock named key: SET key <random value> NX PX <lease>
// (by a script that also accepts the value this attempt may have set),
// tried again every retry interval (with jitter) until it succeeds or ctx
// is done. While held, the lease is extended every renew interval, however
// long the holder keeps it. unlock stops the renewal and deletes the lock
// if it is still this holder's; it may be called more than once and from
// any goroutine.
//
// The error wraps ctx's error when ctx ended the wait, and otherwise is a
// Redis failure; either way the lock is not held.
func (c *Coordinator) Lock(ctx context.Context, key string) (unlock func(), err error) {
	c.checkEviction()
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

	mu    sync.Mutex
	since time.Time // when the lease was last set: it runs out a lease later
}

// setSince records that the lease was set (taken or extended) at t.
func (l *held) setSince(t time.Time) {
	l.mu.Lock()
	l.since = t
	l.mu.Unlock()
}

// expiry returns when the lease runs out unless it is extended.
func (l *held) expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since.Add(l.c.lease)
}

func (c *Coordinator) acquire(ctx context.Context, key string) (*held, error) {
	k := c.prefix + key
	value := rand.Text() // 128 random bits
	var tried time.Time  // when the successful SET was sent: the lease runs from then
	for {
		if err := ctx.Err(); err != nil {
			return nil, c.ctxError(ctx)
		}
		tried = time.Now()
		ok, err := c.trySet(ctx, k, value)
		if err != nil {
			// The SET may have reached Redis even though its answer did
			// not reach us: free the lock in case it is ours, rather than
			// leave every other replica waiting for the lease.
			l := &held{c: c, key: k, value: value, since: tried}
			l.release()
			if ctx.Err() != nil {
				return nil, c.ctxError(ctx)
			}
			c.permissionError(err)
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
	l := &held{c: c, key: k, value: value, stop: stop, renewed: make(chan struct{}), since: tried}
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

// trySet makes one attempt at taking the lock: SET NX PX, by renewScript,
// which also accepts the lock holding value already. So an attempt whose
// answer was lost on a dead connection, and that do repeats on a fresh one,
// takes the lock it may have set rather than wait a lease for it.
func (c *Coordinator) trySet(ctx context.Context, key, value string) (bool, error) {
	n, err := c.client.eval(ctx, renewScript, key, value, c.lease.Milliseconds())
	return n == 1, err
}

// renewLoop extends the lease every renew interval until ctx is cancelled
// (by unlock) or it finds the lock taken by another holder. A failed
// extension is tried again soon, with backoff, on fresh connections, not
// only at the next tick: after a Redis restart every pooled connection is
// dead, and the lease runs on meanwhile. An extension also takes the lock
// back if it is gone and nobody else took it (see renewScript): its holder
// is still inside its redemption.
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
		start := time.Now()
		kept, err := l.extend()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			if failures == 1 && !c.permissionError(err) {
				c.logger.Warn("rediscoord: extending a lock's lease failed; trying again until Redis answers", "error", err)
			}
			wait = backoff(failures, c.renew/2)
			continue
		case !kept:
			c.logger.Error("rediscoord: a held lock was lost: its lease ran out before it could be extended, and another process has taken it",
				"lease", c.lease)
			return
		}
		l.setSince(start)
		if failures > 0 {
			c.logger.Warn("rediscoord: a lock's lease is extended again", "failed attempts", failures)
		}
		wait, failures = c.renew, 0
	}
}

// backoff returns the wait before attempt n+1 after n failures: 10 ms
// doubling, at most limit, drawn between half and all of it.
func backoff(n int, limit time.Duration) time.Duration {
	d := limit
	if n < 20 {
		d = min(limit, 10*time.Millisecond<<n)
	}
	return d/2 + mathrand.N(d/2+1)
}

// extend makes one attempt at extending the lease, or at taking the lock
// back if it is gone (Redis restarted between two renewals and lost it,
// or the lease ran out while Redis was away); kept is false when the lock
// is another holder's. It runs on a deadline of its own, not on the
// renewal's context: unlock waits for an extension in flight rather than
// cut it short, so that none can reach Redis after the unlock's delete and
// take the lock back.
func (l *held) extend() (kept bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.c.renew)
	defer cancel()
	n, err := l.c.client.eval(ctx, renewScript, l.key, l.value, l.c.lease.Milliseconds())
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
		l.release()
	})
}

// release deletes the lock if it still holds this holder's value. It runs
// on no caller's context, so that a cancelled request still frees its lock.
// The first attempt is made at once (with a fresh connection if the pooled
// one is dead); if Redis does not answer, release goes on trying in the
// background, with backoff, until the lease would have run out anyway.
func (l *held) release() {
	freed, err := l.releaseOnce()
	if err == nil {
		if !freed {
			l.c.logger.Warn("rediscoord: a lock was no longer held when it was unlocked: its lease had run out", "lease", l.c.lease)
		}
		return
	}
	go func() {
		for n := 1; ; n++ {
			wait := backoff(n, time.Second)
			if time.Now().Add(wait).After(l.expiry()) {
				l.c.logger.Warn("rediscoord: freeing a lock failed; it is freed when its lease runs out", "error", err, "lease", l.c.lease)
				return
			}
			time.Sleep(wait)
			if _, err = l.releaseOnce(); err == nil {
				return
			}
		}
	}()
}

// releaseOnce makes one attempt at deleting the lock, and reports whether
// it did.
func (l *held) releaseOnce() (freed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	n, err := l.c.client.eval(ctx, releaseScript, l.key, l.value)
	return n == 1, err
}

// Load returns the value stored under key (GET), and false if there is
// none.
func (c *Coordinator) Load(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("rediscoord: load: %w", err)
	}
	b, ok, err := c.client.get(ctx, c.prefix+key)
	if err != nil {
		return nil, false, fmt.Errorf("rediscoord: load: %w", err)
	}
	return b, ok, nil
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
	if err := c.client.setPX(ctx, c.prefix+key, value, ms); err != nil {
		return fmt.Errorf("rediscoord: store: %w", err)
	}
	return nil
}

// Claim claims key for ttl, rounded up to a millisecond: SET key <random
// value> NX PX ttl. It is never extended; release deletes it with the
// compare-and-delete script of unlock, so it never deletes a later claim.
// A repeated attempt after a lost answer may find its own claim and report
// false: the refresh then sends nothing, and a later one waits for the
// claim to expire.
func (c *Coordinator) Claim(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error) {
	if ttl <= 0 {
		return nil, false, ErrTTL
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("rediscoord: claim: %w", err)
	}
	if c.noClaims {
		return func() {}, true, nil
	}
	k, value := c.prefix+key, rand.Text()
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	ok, err = c.client.setNXPX(ctx, k, []byte(value), ms)
	if err != nil {
		c.permissionError(err)
		return nil, false, fmt.Errorf("rediscoord: claim: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			if _, err := c.client.eval(ctx, releaseScript, k, value); err != nil {
				c.permissionError(err)
				c.logger.Warn("rediscoord: releasing a claim failed; it ends when it expires", "error", err)
			}
		})
	}, true, nil
}
