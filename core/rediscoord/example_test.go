package rediscoord_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// Every replica of the app runs the same code: one Redis pool serves both
// the session store and the Coordinator.
func ExampleNew() {
	n := 10 * runtime.GOMAXPROCS(0) // go-redis's default pool size
	pool := &redis.Pool{
		// Bounded: when every connection is busy (many grants due at
		// once), a caller waits for one rather than dial its own and
		// close it after.
		MaxIdle:     n,
		MaxActive:   n,
		Wait:        true,
		IdleTimeout: 4 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", os.Getenv("REDIS_ADDR"),
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(5*time.Second),
				redis.DialWriteTimeout(5*time.Second))
		},
		// After a Redis restart every idle connection is dead: test each
		// on borrow, so that the pool drops them and dials anew.
		TestOnBorrow: func(c redis.Conn, _ time.Time) error {
			_, err := c.Do("PING")
			return err
		},
	}
	defer pool.Close()

	sessions := scs.New()
	sessions.Store = redisstore.New(pool) // shared by every replica

	refresher, err := core.New(core.Config{
		TokenURL:     "https://api.healthgorilla.com/oauth/token",
		ClientID:     "my-client-id",
		ClientSecret: os.Getenv("SMART_CLIENT_SECRET"),
		AuthMethod:   core.ClientSecretPost,
		Sessions:     sessions,
		// The same keys on every replica: each must read the others'
		// records.
		// EncryptionKeys: ...,
		Coordinator: rediscoord.New(pool), // 10 s lease, renewed while held
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/patient", func(w http.ResponseWriter, req *http.Request) {
		tok, _ := nethttpadapter.Token(req)
		fmt.Fprintln(w, "patient", tok.Patient)
	})
	handler := sessions.LoadAndSave(nethttpadapter.Middleware(refresher)(mux))
	log.Fatal(http.ListenAndServe(":8080", handler))
}

// A Redis shared with other apps: a key prefix keeps them apart, and a
// lease longer than the refresh deadline makes the lock independent of
// renewals (at the cost of a longer wait after a crashed holder).
func ExampleWithPrefix() {
	pool := &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", os.Getenv("REDIS_ADDR")) }}
	coord := rediscoord.New(pool,
		rediscoord.WithPrefix("chart-app:"),
		rediscoord.WithLease(core.DefaultRefreshTimeout+5*time.Second),
		rediscoord.WithRenewInterval(5*time.Second),
		rediscoord.WithRetryInterval(50*time.Millisecond),
		rediscoord.WithLogger(slog.Default()),
	)
	_ = coord // core.Config{..., Coordinator: coord}
}

// An app on go-redis (scs's goredisstore, Redis Cluster, Sentinel) needs
// no second client: the Coordinator uses the same keys and scripts as with
// redigo, each script on one key.
func ExampleNewGoRedis() {
	client := goredis.NewClient(&goredis.Options{Addr: os.Getenv("REDIS_ADDR")})
	// or goredis.NewClusterClient(...), goredis.NewFailoverClient(...)
	defer client.Close()

	sessions := scs.New()
	sessions.Store = goredisstore.New(client)

	refresher, err := core.New(core.Config{
		TokenURL:     "https://api.healthgorilla.com/oauth/token",
		ClientID:     "my-client-id",
		ClientSecret: os.Getenv("SMART_CLIENT_SECRET"),
		AuthMethod:   core.ClientSecretPost,
		Sessions:     sessions,
		Coordinator:  rediscoord.NewGoRedis(client),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = refresher
}

// The ACL of a Redis user that runs the Coordinator and nothing else (add
// the commands scs's store needs on its own keys, and +ping for a
// TestOnBorrow).
func ExampleACLCommands() {
	fmt.Println("ACL SETUSER app on >password ~smartrefresh:* -@all " + rediscoord.ACLCommands)
	// Output: ACL SETUSER app on >password ~smartrefresh:* -@all +get +set +evalsha +eval +pexpire +del
}
