package pgcoord_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// Every replica of the app runs the same code: one pool serves the session
// store and the Coordinator.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // not through PgBouncer in transaction mode
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	sessions := scs.New()
	sessions.Store = pgxstore.New(pool) // its "sessions" table, shared by every replica

	refresher, err := core.New(core.Config{
		TokenURL:     "https://api.healthgorilla.com/oauth/token",
		ClientID:     "my-client-id",
		ClientSecret: os.Getenv("SMART_CLIENT_SECRET"),
		AuthMethod:   core.ClientSecretPost,
		Sessions:     sessions,
		// EncryptionKeys: the same on every replica.
		Coordinator: pgcoord.New(pool), // creates its tables on first use
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/patient", func(w http.ResponseWriter, req *http.Request) {
		tok, _ := nethttpadapter.Token(req)
		fmt.Fprintln(w, "patient", tok.Patient)
	})
	log.Fatal(http.ListenAndServe(":8080", sessions.LoadAndSave(nethttpadapter.Middleware(refresher)(mux))))
}

// The tables created by a migration instead of on first use, under names
// of the app's, with a lease longer than the refresh deadline.
func ExampleCoordinator_Schema() {
	pool, err := pgxpool.New(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	coord := pgcoord.New(pool,
		pgcoord.WithTablePrefix("chart_app_smartrefresh"),
		pgcoord.WithManualSchema(),
		pgcoord.WithLease(core.DefaultRefreshTimeout+5*time.Second),
	)
	first, _, _ := strings.Cut(coord.Schema(), "\n")
	fmt.Println(first)
	// Output:
	// CREATE TABLE IF NOT EXISTS "chart_app_smartrefresh_records" (
}

// A Coordinator whose tables are missing, or whose role may not use them,
// fails with ErrSchema, which matches core.ErrMisconfigured: the refresh
// answers 500 rather than 503, since no retry mends it.
func ExampleErrSchema() {
	err := &core.CoordinatorError{Op: "load", Err: fmt.Errorf("pgcoord: load: %w", pgcoord.ErrSchema)}
	fmt.Println(errors.Is(err, core.ErrMisconfigured), errors.Is(err, core.ErrTransient))
	// Output: true false
}
