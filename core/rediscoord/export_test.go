package rediscoord

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/smartrefresh/smartrefresh/internal/services"
)

// Helpers for the tests of both packages (rediscoord and rediscoord_test).

// AddrEnv names the environment variable with the address of the Redis the
// tests use. When it is set, a Redis that cannot be reached fails the tests;
// when it is not, they are skipped.
const AddrEnv = "SMARTREFRESH_REDIS_ADDR"

const defaultTestAddr = "127.0.0.1:6390"

// WithoutRenewal makes a Coordinator that never extends its locks' leases:
// the oauth2-proxy bug, for the control tests that prove the tests would
// catch it.
func WithoutRenewal() Option {
	return func(c *Coordinator) { c.noRenewal = true }
}

// WithoutClaims makes a Coordinator whose Claim always succeeds and
// stores nothing: safety left to the lock alone, for the control tests.
func WithoutClaims() Option {
	return func(c *Coordinator) { c.noClaims = true }
}

// NewTestPool returns a pool on the test Redis, closed when t ends, or
// skips (or fails, see AddrEnv) t when there is none.
func NewTestPool(t testing.TB) *redis.Pool {
	t.Helper()
	addr, required := os.LookupEnv(AddrEnv)
	if addr == "" {
		addr = defaultTestAddr
	}
	pool := newPool(addr)
	t.Cleanup(func() { pool.Close() })
	conn, err := pool.GetContext(context.Background())
	if err == nil {
		_, err = redis.String(conn.Do("PING"))
		conn.Close()
	}
	if err != nil {
		if required {
			t.Fatalf("Redis at %s (%s) is unreachable: %v", addr, AddrEnv, err)
		}
		services.Missing(t, "no Redis at %s: %v (start one, e.g. redis-server --port 6390 --save '' --appendonly no, or set %s)", addr, err, AddrEnv)
	}
	return pool
}

func newPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle:     32,
		IdleTimeout: time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(5*time.Second),
				redis.DialWriteTimeout(5*time.Second))
		},
	}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_/-]`)

// KeyPrefix returns a key prefix that no other test uses, and deletes
// every key under it when t ends (and nothing else).
func KeyPrefix(t testing.TB, pool *redis.Pool) string {
	t.Helper()
	prefix := "smartrefresh-test:" + unsafeChars.ReplaceAllString(t.Name(), "_") + ":" + rand.Text()[:10] + ":"
	t.Cleanup(func() {
		if err := deletePrefix(pool, prefix); err != nil {
			t.Errorf("deleting the test keys: %v", err)
		}
	})
	return prefix
}

// deletePrefix deletes every key that starts with prefix, which holds no
// glob characters.
func deletePrefix(pool *redis.Pool, prefix string) error {
	conn := pool.Get()
	defer conn.Close()
	cursor := "0"
	for {
		reply, err := redis.Values(conn.Do("SCAN", cursor, "MATCH", prefix+"*", "COUNT", 1000))
		if err != nil {
			return err
		}
		if len(reply) != 2 {
			return errors.New("unexpected SCAN reply")
		}
		cursor, _ = redis.String(reply[0], nil)
		keys, _ := redis.Strings(reply[1], nil)
		for _, k := range keys {
			if _, err := conn.Do("DEL", k); err != nil {
				return err
			}
		}
		if cursor == "0" {
			return nil
		}
	}
}

// EvictionChecked reports whether c has logged what it found of Redis's
// eviction policy.
func EvictionChecked(c *Coordinator) bool { return c.checked.Load() }

// LogBuffer is a bytes.Buffer for a logger written from several
// goroutines, read while no write is under way.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
