package coordbench_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// benchGrants grants are due at once; each gets one request on each of
// benchReplicas replicas, all released together.
const (
	benchGrants      = 300
	benchReplicas    = 3
	benchServiceTime = 20 * time.Millisecond // the token endpoint's time per call
)

// BenchmarkGrantsDue: 300 grants due at once across 3 replicas, every grant
// requested on every replica at the same moment (900 requests), the token
// endpoint taking 20 ms per call, the sessions in memory so that only the
// coordination differs. One op is one such wave: exactly 300 token calls,
// no reuse. engine=none is one replica without a Coordinator (the same 900
// requests in one process): the added p99 of an engine is its p99 minus
// that one's. The engines run in the same process, one after the other,
// with the pools' defaults (pgxpool: max(4, NumCPU) connections).
//
// Custom metrics:
//
//	p50-ns, p99-ns  latency of the requests of a wave
//	tokencalls/op   token calls per wave (exactly 300)
func BenchmarkGrantsDue(b *testing.B) {
	b.Run("engine=none", func(b *testing.B) { benchGrantsDue(b, nil) })
	prefix := "smartrefresh-bench:" + rand.Text()[:10] + ":" // every key expires
	b.Run("engine=postgres", func(b *testing.B) {
		url := os.Getenv("SMARTREFRESH_POSTGRES_URL")
		if url == "" {
			b.Skip("no PostgreSQL: set SMARTREFRESH_POSTGRES_URL")
		}
		benchGrantsDue(b, func(b *testing.B) core.Coordinator {
			p, err := pgxpool.New(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			return pgcoord.New(p, pgcoord.WithPrefix(prefix), pgcoord.WithLogger(slog.New(slog.DiscardHandler)))
		})
	})
	addr := os.Getenv("SMARTREFRESH_REDIS_ADDR")
	b.Run("engine=goredis", func(b *testing.B) {
		if addr == "" {
			b.Skip("no Redis: set SMARTREFRESH_REDIS_ADDR")
		}
		benchGrantsDue(b, func(b *testing.B) core.Coordinator {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			b.Cleanup(func() { c.Close() })
			return rediscoord.NewGoRedis(c, rediscoord.WithPrefix(prefix), rediscoord.WithLogger(slog.New(slog.DiscardHandler)))
		})
	})
	b.Run("engine=redigo", func(b *testing.B) {
		if addr == "" {
			b.Skip("no Redis: set SMARTREFRESH_REDIS_ADDR")
		}
		benchGrantsDue(b, func(b *testing.B) core.Coordinator {
			// As go-redis's defaults: 10 connections per CPU, callers queue for one.
			pool := &redis.Pool{MaxIdle: 10 * runtime.GOMAXPROCS(0), MaxActive: 10 * runtime.GOMAXPROCS(0), Wait: true, IdleTimeout: time.Minute, DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", addr, redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
			}}
			b.Cleanup(func() { pool.Close() })
			return rediscoord.New(pool, rediscoord.WithPrefix(prefix), rediscoord.WithLogger(slog.New(slog.DiscardHandler)))
		})
	})
}

func benchGrantsDue(b *testing.B, newCoord func(b *testing.B) core.Coordinator) {
	clock := smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now, AccessTokenTTL: time.Hour})
	b.Cleanup(srv.Close)
	srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(benchServiceTime)
		next.ServeHTTP(w, r)
	})
	store := scs.New().Store
	o := srv.Options()
	var reps []*core.Refresher
	var sms []*scs.SessionManager
	for range benchReplicas {
		sm := scs.New()
		sm.Store = store
		cfg := core.Config{TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			AuthMethod: o.AuthMethod, Sessions: sm, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)}
		if newCoord != nil {
			cfg.Coordinator = newCoord(b)
		}
		r, err := core.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		reps, sms = append(reps, r), append(sms, sm)
		if newCoord == nil {
			// One process: every request goes to it.
			reps, sms = slices.Repeat(reps, benchReplicas), slices.Repeat(sms, benchReplicas)
			break
		}
	}
	sessions := make([]string, benchGrants)
	for i := range sessions {
		ctx, err := sms[0].Load(context.Background(), "")
		if err != nil {
			b.Fatal(err)
		}
		if err := reps[0].Save(ctx, srv.Grant()); err != nil {
			b.Fatal(err)
		}
		sessions[i] = sms[0].Token(ctx)
		if _, _, err := sms[0].Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var latency []time.Duration
	calls := srv.RefreshCalls()
	for b.Loop() {
		b.StopTimer()
		clock.Advance(time.Hour)
		start := make(chan struct{})
		var loaded, wg sync.WaitGroup
		took := make([]time.Duration, benchGrants*benchReplicas)
		for i := range took {
			loaded.Add(1)
			wg.Go(func() {
				rep := i % benchReplicas
				ctx, err := sms[rep].Load(context.Background(), sessions[i/benchReplicas])
				loaded.Done()
				if err != nil {
					b.Error(err)
					return
				}
				<-start
				t0 := time.Now()
				if _, err := reps[rep].Token(ctx); err != nil {
					b.Error(err)
				}
				sms[rep].Commit(ctx)
				took[i] = time.Since(t0)
			})
		}
		loaded.Wait()
		b.StartTimer()
		close(start)
		wg.Wait()
		latency = append(latency, took...)
	}
	b.StopTimer()
	n := srv.RefreshCalls() - calls
	if n != benchGrants*b.N {
		b.Fatalf("%d token calls for %d waves of %d due grants", n, b.N, benchGrants)
	}
	if r := srv.Reuses(); r != 0 {
		b.Fatalf("%d reuses", r)
	}
	slices.Sort(latency)
	b.ReportMetric(float64(latency[len(latency)/2]), "p50-ns")
	b.ReportMetric(float64(latency[len(latency)*99/100]), "p99-ns")
	b.ReportMetric(float64(n)/float64(b.N), "tokencalls/op")
}
