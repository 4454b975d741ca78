package pgcoord_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// roleURL creates a login role without any privilege of its own (no
// CREATE on the schema: PostgreSQL 15's default), dropped when t ends, and
// returns the test database's URL as that role.
func roleURL(t *testing.T, admin *pgxpool.Pool) (role, u string) {
	t.Helper()
	role = "smartrefresh_app_" + strings.ToLower(rand.Text()[:8])
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(ctx, "DROP OWNED BY "+role)
		admin.Exec(ctx, "DROP ROLE "+role)
	})
	parsed, err := url.Parse(os.Getenv(pgcoord.URLEnv))
	if err != nil {
		t.Fatal(err)
	}
	parsed.User = url.User(role)
	return role, parsed.String()
}

// Issue 21, item 7: a role without CREATE, the tables created by a
// migration (Schema, run by another role) and granted to it: the
// Coordinator works, without WithManualSchema. Before: PostgreSQL refuses
// CREATE TABLE IF NOT EXISTS to the role even when the table exists, and
// every refresh failed as transient, for ever.
func TestRoleWithoutCreateAndTablesMigrated(t *testing.T) {
	admin := pgcoord.NewTestPool(t)
	role, u := roleURL(t, admin)
	tables := "smartrefresh_test_" + strings.ToLower(rand.Text()[:8])
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+tables+"_records, "+tables+"_locks")
	})
	ctx := context.Background()
	if _, err := admin.Exec(ctx, pgcoord.New(admin, pgcoord.WithTablePrefix(tables)).Schema()); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %[1]s_records, %[1]s_locks TO %[2]s", tables, role)); err != nil {
		t.Fatal(err)
	}
	c := pgcoord.New(pgcoord.NewTestPool(t, u), pgcoord.WithTablePrefix(tables), pgcoord.WithLogger(testLogger(t)))
	unlock, err := c.Lock(ctx, "smartrefresh:lock:k")
	if err != nil {
		t.Fatalf("Lock as a role without CREATE, the tables there: %v", err)
	}
	if err := c.Store(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Load(ctx, "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Load = %q, %v, %v", v, ok, err)
	}
	release, ok, err := c.Claim(ctx, "claim", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	release()
	unlock()
}

// Issue 21, item 7: tables missing and the role may not create them, or
// tables there and the role may not use them: every call fails with an
// error matching core.ErrMisconfigured (a refresh answers 500, not 503),
// logged once, with the fix.
func TestMissingTablesOrPrivilegesAreMisconfigured(t *testing.T) {
	admin := pgcoord.NewTestPool(t)
	role, u := roleURL(t, admin)
	ctx := context.Background()
	granted := "smartrefresh_test_" + strings.ToLower(rand.Text()[:8])
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP TABLE IF EXISTS "+granted+"_records, "+granted+"_locks")
	})
	if _, err := admin.Exec(ctx, pgcoord.New(admin, pgcoord.WithTablePrefix(granted)).Schema()); err != nil {
		t.Fatal(err)
	}
	_ = role
	for _, tc := range []struct {
		name string
		opts []pgcoord.Option
	}{
		{"missing, created on first use", []pgcoord.Option{pgcoord.WithTablePrefix("smartrefresh_missing_" + strings.ToLower(rand.Text()[:8]))}},
		{"missing, manual schema", []pgcoord.Option{pgcoord.WithTablePrefix("smartrefresh_missing_" + strings.ToLower(rand.Text()[:8])), pgcoord.WithManualSchema()}},
		{"there, not granted", []pgcoord.Option{pgcoord.WithTablePrefix(granted)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &pgcoord.LogBuffer{}
			c := pgcoord.New(pgcoord.NewTestPool(t, u), append(tc.opts, pgcoord.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))...)
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, lockErr := c.Lock(cctx, "k")
			_, _, loadErr := c.Load(cctx, "k")
			storeErr := c.Store(cctx, "k", []byte("v"), time.Minute)
			_, _, claimErr := c.Claim(cctx, "c", time.Minute)
			for name, err := range map[string]error{"Lock": lockErr, "Load": loadErr, "Store": storeErr, "Claim": claimErr} {
				if !errors.Is(err, core.ErrMisconfigured) || !errors.Is(err, pgcoord.ErrSchema) {
					t.Errorf("%s: %v, want core.ErrMisconfigured", name, err)
				}
				if ce := (&core.CoordinatorError{Op: "load", Err: err}); errors.Is(ce, core.ErrTransient) || !errors.Is(ce, core.ErrMisconfigured) {
					t.Errorf("%s: a refresh failing with it would be transient", name)
				}
			}
			if n := strings.Count(logs.String(), "Coordinator.Schema()"); n != 1 {
				t.Errorf("the fix was logged %d times, want once:\n%s", n, logs)
			}
		})
	}
}

// The creation of the tables runs under a lock_timeout of its own: a
// session holding a lock on the schema does not hang the first use.
func TestMigrationHasTimeouts(t *testing.T) {
	if !strings.Contains(pgcoord.MigrationTimeouts, "lock_timeout") || !strings.Contains(pgcoord.MigrationTimeouts, "statement_timeout") {
		t.Errorf("migration settings %q", pgcoord.MigrationTimeouts)
	}
}

// Issue 21, item 5: with PostgreSQL blackholed (connections accepted,
// never answered), a request without a deadline gets its answer within
// about RefreshTimeout: the first look-up of the shared record is bounded
// too. Before: still hanging after 20 s.
func TestBlackholedDatabaseBoundedByRefreshTimeout(t *testing.T) {
	pgcoord.NewTestPool(t) // skips without PostgreSQL
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+ln.Addr().String()+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	clock := smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now, AccessTokenTTL: time.Hour})
	t.Cleanup(srv.Close)
	sm := scs.New()
	o := srv.Options()
	const timeout = 500 * time.Millisecond
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, AuthMethod: o.AuthMethod,
		Sessions: sm, Now: clock.Now, RefreshTimeout: timeout, Logger: slog.New(slog.DiscardHandler),
		Coordinator: pgcoord.New(pool, pgcoord.WithManualSchema(), pgcoord.WithLogger(slog.New(slog.DiscardHandler))),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := sm.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, srv.Grant()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // expired: no old token to fall back on
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := r.Token(ctx) // no deadline
		done <- err
	}()
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("answered after %v: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, core.ErrTransient) {
			t.Errorf("Token: %v, want a transient error", err)
		}
		if took > 3*timeout {
			t.Errorf("answered after %v, want about RefreshTimeout (%v)", took, timeout)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Token still hung after 5 s with RefreshTimeout %v", timeout)
	}
	if n := srv.RefreshCalls(); n != 0 {
		t.Errorf("%d token calls without the Coordinator", n)
	}
}
