package rediscoord_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// Every replica of the app runs the same code: one Redis pool serves both
// the session store and the Coordinator.
func Example() {
	pool := &redis.Pool{
		MaxIdle:     10,
		IdleTimeout: 4 * time.Minute,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", os.Getenv("REDIS_ADDR"),
				redis.DialConnectTimeout(2*time.Second),
				redis.DialReadTimeout(5*time.Second),
				redis.DialWriteTimeout(5*time.Second))
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
