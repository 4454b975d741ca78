package rediscoord_test

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
)

// lostBackend is a coordtest.Backend on a redis-server of the test's own,
// every other Coordinator on go-redis.
func lostBackend(t *testing.T, rs *redisServer) coordtest.Backend {
	n := 0
	newCoord := func(t *testing.T, lease time.Duration) core.Coordinator {
		opts := []rediscoord.Option{rediscoord.WithLease(lease), rediscoord.WithRetryInterval(5 * time.Millisecond),
			rediscoord.WithLogger(slog.New(slog.NewTextHandler(tWriter{t}, nil)))}
		n++
		if n%2 == 0 {
			c := goredis.NewClient(&goredis.Options{Addr: rs.addr, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
			t.Cleanup(func() { c.Close() })
			return rediscoord.NewGoRedis(c, opts...)
		}
		pool := restartPool(rs.addr, true)
		t.Cleanup(func() { pool.Close() })
		return rediscoord.New(pool, opts...)
	}
	return coordtest.Backend{
		New:      newCoord,
		Sessions: func(t *testing.T) scs.Store { return scs.New().Store },
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// TestRedisPausedLongerThanLease: Redis is stopped (SIGSTOP) for 3.5
// leases (lease 500 ms) while replica A's token call is in flight, so A's lease runs out
// without A stopping; B, waiting for the lock, takes it when Redis runs
// again. B must not send A's refresh token.
func TestRedisPausedLongerThanLease(t *testing.T) {
	rs := startRedisServer(t)
	const lease = 500 * time.Millisecond
	coordtest.RunLockLost(t, lostBackend(t, rs), lease, func(t *testing.T) {
		if err := rs.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(7 * lease / 2)
		if err := rs.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRedisLockKeyDeleted: the lock's key vanishes (deleted, or evicted by
// a maxmemory-policy that evicts) while replica A's token call is in
// flight. B must not send A's refresh token.
func TestRedisLockKeyDeleted(t *testing.T) {
	rs := startRedisServer(t)
	coordtest.RunLockLost(t, lostBackend(t, rs), 500*time.Millisecond, func(t *testing.T) {
		conn, err := redis.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		keys, err := redis.Strings(conn.Do("KEYS", "smartrefresh:lock:*"))
		if err != nil || len(keys) != 1 {
			t.Fatalf("lock keys %q, %v", keys, err)
		}
		if _, err := conn.Do("DEL", keys[0]); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRedisLockKeyEvicted: Redis runs out of memory under a policy that
// evicts keys with a TTL (volatile-ttl: the shortest first) while replica
// A's token call is in flight, and evicts A's lock. B must not send A's
// refresh token. (A policy that evicted the refresh token's claim too
// would defeat any client: keep noeviction, which the Coordinator warns
// about at first use.)
func TestRedisLockKeyEvicted(t *testing.T) {
	rs := startRedisServer(t)
	coordtest.RunLockLost(t, lostBackend(t, rs), 500*time.Millisecond, func(t *testing.T) {
		conn, err := redis.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		keys, err := redis.Strings(conn.Do("KEYS", "smartrefresh:lock:*"))
		if err != nil || len(keys) != 1 {
			t.Fatalf("lock keys %q, %v", keys, err)
		}
		info, err := redis.String(conn.Do("INFO", "memory"))
		if err != nil {
			t.Fatal(err)
		}
		var used int64
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				used, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		claim := strings.Replace(keys[0], ":lock:", ":sending:", 1)
		claimed, _ := redis.Int(conn.Do("EXISTS", claim))
		conn.Do("CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
		conn.Do("CONFIG", "SET", "maxmemory", used+512<<10)
		filler := strings.Repeat("x", 16<<10)
		evicted := false
		for i := 0; i < 4000 && !evicted; i++ {
			conn.Do("SET", fmt.Sprint("filler:", i), filler, "PX", 10000)
			n, _ := redis.Int(conn.Do("EXISTS", keys[0]))
			evicted = n == 0
		}
		conn.Do("CONFIG", "SET", "maxmemory", 0)
		if !evicted {
			t.Fatal("the lock key was not evicted")
		}
		if n, _ := redis.Int(conn.Do("EXISTS", claim)); n != claimed {
			t.Fatal("the refresh token's claim was evicted too: no client survives that")
		}
	})
}
