package pgcoord

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/internal/services"
)

// Helpers for the tests of both packages (pgcoord and pgcoord_test).

// URLEnv names the environment variable with the URL of the PostgreSQL the
// tests use; they are skipped when it is unset (TestMain says so once),
// and fail when it is set but the server cannot be reached.
const URLEnv = "SMARTREFRESH_POSTGRES_URL"

// Crash makes c behave as a killed process: its renewals stop, the
// connections holding its locks end, and it neither unlocks nor answers
// any more.
func Crash(c *Coordinator) {
	c.crashed.Store(true)
	c.heldMu.Lock()
	held := make([]*held, 0, len(c.held))
	for l := range c.held {
		held = append(held, l)
	}
	c.heldMu.Unlock()
	for _, l := range held {
		l.stop()
		<-l.renewed
	}
}

// NewTestPool returns a pool on the test database (at url, or the one
// URLEnv names), closed when t ends, or skips t when there is none.
func NewTestPool(t testing.TB, url ...string) *pgxpool.Pool {
	t.Helper()
	u := os.Getenv(URLEnv)
	if len(url) > 0 {
		u = url[0]
	}
	if u == "" {
		services.Missing(t, "no PostgreSQL: set %s (bash .ci/run starts one)", URLEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatalf("%s: %v", URLEnv, err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		t.Fatalf("PostgreSQL at %s (%s) is unreachable: %v", cfg.ConnConfig.Host, URLEnv, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_/-]`)

// KeyPrefix returns a key prefix no other test uses, and deletes every row
// under it (in the default tables) when t ends.
func KeyPrefix(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	prefix := "smartrefresh-test:" + unsafeChars.ReplaceAllString(t.Name(), "_") + ":" + rand.Text()[:10] + ":"
	t.Cleanup(func() {
		c := New(pool)
		for _, table := range []string{c.records, c.locks} {
			if _, err := pool.Exec(context.Background(), "DELETE FROM "+table+" WHERE starts_with(key, $1)", prefix); err != nil {
				t.Errorf("deleting the test rows: %v", err)
			}
		}
	})
	return prefix
}

// SessionsTable creates scs pgxstore's sessions table if needed.
func SessionsTable(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `SELECT pg_advisory_xact_lock(42);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON sessions (expiry);`)
	if err != nil {
		t.Fatal(err)
	}
}

// PrivateServer starts a throw-away PostgreSQL server of this test's own
// with .ci/postgres (the test may restart it without disturbing others),
// stopped when t ends. It returns its URL and a function that restarts it.
func PrivateServer(t testing.TB) (url string, restart func(testing.TB)) {
	s := StartPrivateServer(t)
	return s.URL, s.Restart
}

// A Server is a PostgreSQL server of one test's own, which the test may
// restart, stop and start.
type Server struct {
	URL    string
	script string
	dir    string
}

// StartPrivateServer starts a Server, stopped and removed when t ends.
func StartPrivateServer(t testing.TB) *Server {
	t.Helper()
	script, err := filepath.Abs("../../.ci/postgres")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the server runs as another user, which must reach it.
	dir, err := os.MkdirTemp("", "smartrefresh-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{script: script, dir: filepath.Join(dir, "pg")}
	out, err := exec.Command("bash", script, "start", fmt.Sprint(port), s.dir).Output()
	t.Cleanup(func() {
		exec.Command("bash", script, "stop", s.dir).Run()
		os.RemoveAll(dir)
	})
	if err != nil {
		t.Fatalf("starting a private PostgreSQL: %v", err)
	}
	s.URL = strings.TrimSpace(string(out))
	return s
}

func (s *Server) run(t testing.TB, cmd string) {
	t.Helper()
	if out, err := exec.Command("bash", s.script, cmd, s.dir).CombinedOutput(); err != nil {
		t.Fatalf("PostgreSQL %s: %v\n%s", cmd, err, out)
	}
}

// Restart restarts the server (fast shutdown: every connection ends).
func (s *Server) Restart(t testing.TB) { s.run(t, "restart") }

// Down stops the server, keeping its data; Up starts it again.
func (s *Server) Down(t testing.TB) { s.run(t, "down") }

// Up starts the server Down stopped, and returns once it accepts
// connections.
func (s *Server) Up(t testing.TB) { s.run(t, "up") }

// MigrationTimeouts are the settings of the tables' creation.
const MigrationTimeouts = migrationTimeouts

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
