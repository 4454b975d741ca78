package pgcoord_test

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
)

func TestMain(m *testing.M) {
	if os.Getenv(pgcoord.URLEnv) == "" {
		fmt.Printf("pgcoord: the PostgreSQL tests are skipped: set %s (bash .ci/run starts one)\n", pgcoord.URLEnv)
	}
	os.Exit(m.Run())
}

// backend is the coordtest.Backend of one test on the database at url
// (the shared test database when empty): every Coordinator on its own
// pool, as a process has, under a key prefix of the test's own.
func backend(t *testing.T, url string, restart func(testing.TB)) coordtest.Backend {
	var urls []string
	if url != "" {
		urls = []string{url}
	}
	pool := pgcoord.NewTestPool(t, urls...)
	prefix := pgcoord.KeyPrefix(t, pool)
	pgcoord.SessionsTable(t, pool)
	newCoord := func(t *testing.T, lease time.Duration) *pgcoord.Coordinator {
		return pgcoord.New(pgcoord.NewTestPool(t, urls...), pgcoord.WithPrefix(prefix), pgcoord.WithLease(lease),
			pgcoord.WithRetryInterval(5*time.Millisecond), pgcoord.WithLogger(testLogger(t)))
	}
	b := coordtest.Backend{
		New: func(t *testing.T, lease time.Duration) core.Coordinator { return newCoord(t, lease) },
		Crashable: func(t *testing.T, lease time.Duration) (core.Coordinator, func()) {
			c := newCoord(t, lease)
			return c, func() { pgcoord.Crash(c) }
		},
		Sessions: func(t *testing.T) scs.Store {
			return pgxstore.NewWithCleanupInterval(pgcoord.NewTestPool(t, urls...), 0)
		},
	}
	if restart != nil {
		b.Restart = func(t *testing.T) { restart(t) }
	}
	return b
}

func TestCoordinator(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coordtest.Backend { return backend(t, "", nil) })
}

// The restart test restarts a server of its own, so that it disturbs no
// other test.
func TestRestart(t *testing.T) {
	pgcoord.NewTestPool(t) // skips without PostgreSQL
	url, restart := pgcoord.PrivateServer(t)
	coordtest.RunRestart(t, func(t *testing.T) coordtest.Backend { return backend(t, url, restart) })
}

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
