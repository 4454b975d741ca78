package demo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/alexedwards/scs/pgxstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
)

// Shared is what the replicas of the demo share with -redis or -postgres:
// the scs session store and the Coordinator, on one client of the engine.
type Shared struct {
	Store       scs.Store
	Coordinator core.Coordinator
	// Name says where, without a password: "Redis at 127.0.0.1:6379".
	Name  string
	close func()
}

// Close closes the engine's client.
func (s *Shared) Close() {
	if s != nil && s.close != nil {
		s.close()
	}
}

// SessionsTable is the table scs's pgxstore needs; OpenShared creates it
// if it does not exist.
const SessionsTable = `CREATE TABLE IF NOT EXISTS sessions (
	token  TEXT PRIMARY KEY,
	data   BYTEA NOT NULL,
	expiry TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON sessions (expiry);`

// OpenShared connects to cfg's -redis or -postgres engine and returns the
// session store and Coordinator on it; nil when cfg names neither (one
// process, sessions in memory).
func OpenShared(ctx context.Context, cfg Config) (*Shared, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case cfg.RedisAddr != "":
		n := 10 * runtime.GOMAXPROCS(0) // bounded as go-redis's pool (rediscoord.New)
		pool := &redis.Pool{
			MaxIdle:     n,
			MaxActive:   n,
			Wait:        true,
			IdleTimeout: 4 * time.Minute,
			DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", cfg.RedisAddr,
					redis.DialConnectTimeout(2*time.Second),
					redis.DialReadTimeout(5*time.Second),
					redis.DialWriteTimeout(5*time.Second))
			},
		}
		conn, err := pool.GetContext(ctx)
		if err == nil {
			_, err = redis.DoContext(conn, ctx, "PING")
			conn.Close()
		}
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("-redis %s: %w", cfg.RedisAddr, err)
		}
		return &Shared{
			Store:       redisstore.New(pool),
			Coordinator: rediscoord.New(pool),
			Name:        "Redis at " + cfg.RedisAddr,
			close:       func() { pool.Close() },
		}, nil
	case cfg.PostgresURL != "":
		pool, err := pgxpool.New(ctx, cfg.PostgresURL)
		if err != nil {
			return nil, errors.New("-postgres: the URL does not parse") // it may hold a password
		}
		name := "PostgreSQL at " + pool.Config().ConnConfig.Host
		if _, err := pool.Exec(ctx, SessionsTable); err != nil {
			pool.Close()
			return nil, fmt.Errorf("-postgres: %s: %w", name, err)
		}
		store := pgxstore.New(pool)
		return &Shared{
			Store:       store,
			Coordinator: pgcoord.New(pool),
			Name:        name,
			close: func() {
				store.StopCleanup()
				pool.Close()
			},
		}, nil
	}
	return nil, nil
}
