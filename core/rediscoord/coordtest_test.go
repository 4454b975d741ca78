package rediscoord_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
)

// The shared Coordinator suite, on a redigo pool per process.
func TestCoordinator(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coordtest.Backend {
		pool := rediscoord.NewTestPool(t)
		prefix := rediscoord.KeyPrefix(t, pool)
		opts := func(lease time.Duration) []rediscoord.Option {
			return []rediscoord.Option{rediscoord.WithPrefix(prefix), rediscoord.WithLease(lease),
				rediscoord.WithRetryInterval(5 * time.Millisecond), rediscoord.WithLogger(slog.New(slog.DiscardHandler))}
		}
		return coordtest.Backend{
			New: func(t *testing.T, lease time.Duration) core.Coordinator {
				return rediscoord.New(rediscoord.NewTestPool(t), opts(lease)...)
			},
			Crashable: func(t *testing.T, lease time.Duration) (core.Coordinator, func()) {
				pool, crash := crashablePool(t)
				return rediscoord.New(pool, opts(lease)...), crash
			},
			Sessions: func(t *testing.T) scs.Store {
				return redisstore.NewWithPrefix(rediscoord.NewTestPool(t), prefix+"scs:")
			},
		}
	})
}

// crashablePool is a pool on the test Redis whose crash makes it as a dead
// process's: its connections close and no new one can be made, so the
// Coordinator on it can neither renew nor free its locks.
func crashablePool(t *testing.T) (*redis.Pool, func()) {
	base := rediscoord.NewTestPool(t)
	var dead atomic.Bool
	pool := &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			if dead.Load() {
				return nil, errors.New("the process is dead")
			}
			return base.DialContext(ctx)
		},
		TestOnBorrow: func(redis.Conn, time.Time) error {
			if dead.Load() {
				return errors.New("the process is dead")
			}
			return nil
		},
	}
	t.Cleanup(func() { pool.Close() })
	return pool, func() {
		dead.Store(true)
		pool.Close()
	}
}

// newGoRedis returns a go-redis client on the test Redis (the address of
// NewTestPool's), closed when t ends.
func newGoRedis(t *testing.T, dialer func(ctx context.Context, network, addr string) (net.Conn, error)) *goredis.Client {
	rediscoord.NewTestPool(t) // skips without Redis
	addr := os.Getenv(rediscoord.AddrEnv)
	if addr == "" {
		addr = "127.0.0.1:6390"
	}
	// Room for the storms' hundreds of concurrent requests per process.
	c := goredis.NewClient(&goredis.Options{Addr: addr, Dialer: dialer, PoolSize: 128, PoolTimeout: 30 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// The shared suite with go-redis clients (as scs's goredisstore uses),
// every third process on redigo instead: both clients use the same keys
// and scripts, so replicas on either exclude each other.
func TestCoordinatorGoRedis(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coordtest.Backend {
		pool := rediscoord.NewTestPool(t)
		prefix := rediscoord.KeyPrefix(t, pool)
		opts := func(lease time.Duration) []rediscoord.Option {
			return []rediscoord.Option{rediscoord.WithPrefix(prefix), rediscoord.WithLease(lease),
				rediscoord.WithRetryInterval(5 * time.Millisecond), rediscoord.WithLogger(slog.New(slog.DiscardHandler))}
		}
		var n atomic.Int64
		return coordtest.Backend{
			New: func(t *testing.T, lease time.Duration) core.Coordinator {
				if n.Add(1)%3 == 0 {
					return rediscoord.New(rediscoord.NewTestPool(t), opts(lease)...)
				}
				return rediscoord.NewGoRedis(newGoRedis(t, nil), opts(lease)...)
			},
			Crashable: func(t *testing.T, lease time.Duration) (core.Coordinator, func()) {
				var dead atomic.Bool
				var d net.Dialer
				c := newGoRedis(t, func(ctx context.Context, network, addr string) (net.Conn, error) {
					if dead.Load() {
						return nil, errors.New("the process is dead")
					}
					return d.DialContext(ctx, network, addr)
				})
				return rediscoord.NewGoRedis(c, opts(lease)...), func() {
					dead.Store(true)
					c.Close()
				}
			},
			Sessions: func(t *testing.T) scs.Store {
				return goredisstore.NewWithPrefix(newGoRedis(t, nil), prefix+"scs:")
			},
		}
	})
}
