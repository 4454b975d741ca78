package pgcoord_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
)

// lostBackend is a coordtest.Backend on a PostgreSQL server of the test's
// own: the n-th Coordinator's connections carry application_name
// "replica-n", so that a test can end one replica's connections.
func lostBackend(t *testing.T, url string) coordtest.Backend {
	n := 0
	return coordtest.Backend{
		New: func(t *testing.T, lease time.Duration) core.Coordinator {
			n++
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 8
			cfg.ConnConfig.RuntimeParams["application_name"] = fmt.Sprintf("replica-%d", n)
			pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			return pgcoord.New(pool, pgcoord.WithLease(lease), pgcoord.WithRetryInterval(5*time.Millisecond),
				pgcoord.WithLogger(testLogger(t)))
		},
		Sessions: func(t *testing.T) scs.Store { return scs.New().Store },
	}
}

// TestLockLost runs the faults of PostgreSQL while replica A's token call
// is in flight, on a server of the test's own.
func TestLockLost(t *testing.T) {
	pgcoord.NewTestPool(t) // skips without PostgreSQL
	s := pgcoord.StartPrivateServer(t)

	// The database stops and starts again 1.7 s later (lease 1 s): A's
	// claim expired meanwhile without A stopping. B, waiting for the
	// lock, and C, arriving after, must not send A's refresh token.
	t.Run("DatabaseDownLongerThanLease", func(t *testing.T) {
		coordtest.RunLockLost(t, lostBackend(t, s.URL), time.Second, func(t *testing.T) {
			s.Down(t)
			time.Sleep(1700 * time.Millisecond)
			s.Up(t)
		})
	})

	// A's connections end (pg_terminate_backend, as idle_session_timeout,
	// a failover or a proxy's idle timeout would).
	t.Run("HolderConnectionTerminated", func(t *testing.T) {
		admin := pgcoord.NewTestPool(t, s.URL)
		coordtest.RunLockLost(t, lostBackend(t, s.URL), 500*time.Millisecond, func(t *testing.T) {
			var n int
			if err := admin.QueryRow(context.Background(),
				`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'replica-1'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			t.Logf("terminated %d of replica A's connections", n)
		})
	})
}
