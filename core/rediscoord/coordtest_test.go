package rediscoord_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

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
