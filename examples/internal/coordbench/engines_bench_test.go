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
// coordination differs. One op is one such wave on each engine, one after
// the other, the order turning by one at every op; each wave makes exactly
// 300 token calls, with no reuse. engine none is one replica without a
// Coordinator (the same 900 requests in one process): the added p99 of an
// engine is its p99 minus that one's. The waves of one op run seconds
// apart, so that on a shared machine the engines meet the same load: run
// one after the other as sub-benchmarks, minutes apart, their ratios
// measured the load's swings more than the engines. Every engine uses its
// pool's defaults (pgxpool: max(4, NumCPU) connections; go-redis: 10 per
// CPU), and redigo a pool sized as go-redis's.
//
// Custom metrics, for each engine E that has a server (none, postgres,
// goredis, redigo):
//
//	E-p50-ns, E-p99-ns  latency of the requests of E's waves
//	tokencalls/op       token calls per wave (exactly 300 on every engine)
func BenchmarkGrantsDue(b *testing.B) {
	prefix := "smartrefresh-bench:" + rand.Text()[:10] + ":" // every key expires
	engines := []*grantsDue{{engine: "none"}}
	if url := os.Getenv("SMARTREFRESH_POSTGRES_URL"); url == "" {
		b.Log("engine postgres skipped: set SMARTREFRESH_POSTGRES_URL")
	} else {
		engines = append(engines, &grantsDue{engine: "postgres", newCoord: func(b *testing.B) core.Coordinator {
			p, err := pgxpool.New(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.Close)
			return pgcoord.New(p, pgcoord.WithPrefix(prefix), pgcoord.WithLogger(slog.New(slog.DiscardHandler)))
		}})
	}
	if addr := os.Getenv("SMARTREFRESH_REDIS_ADDR"); addr == "" {
		b.Log("engines goredis and redigo skipped: set SMARTREFRESH_REDIS_ADDR")
	} else {
		engines = append(engines, &grantsDue{engine: "goredis", newCoord: func(b *testing.B) core.Coordinator {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			b.Cleanup(func() { c.Close() })
			return rediscoord.NewGoRedis(c, rediscoord.WithPrefix(prefix), rediscoord.WithLogger(slog.New(slog.DiscardHandler)))
		}}, &grantsDue{engine: "redigo", newCoord: func(b *testing.B) core.Coordinator {
			// As go-redis's defaults: 10 connections per CPU, callers queue for one.
			n := 10 * runtime.GOMAXPROCS(0)
			pool := &redis.Pool{MaxIdle: n, MaxActive: n, Wait: true, IdleTimeout: time.Minute, DialContext: func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", addr, redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
			}}
			b.Cleanup(func() { pool.Close() })
			return rediscoord.New(pool, rediscoord.WithPrefix(prefix), rediscoord.WithLogger(slog.New(slog.DiscardHandler)))
		}})
	}
	for _, e := range engines {
		e.setUp(b)
	}
	for op := 0; b.Loop(); op++ {
		for i := range engines {
			engines[(op+i)%len(engines)].wave(b)
		}
	}
	b.StopTimer()
	calls := 0
	for _, e := range engines {
		calls += e.check(b)
		slices.Sort(e.latency)
		b.ReportMetric(float64(e.latency[len(e.latency)/2]), e.engine+"-p50-ns")
		b.ReportMetric(float64(e.latency[len(e.latency)*99/100]), e.engine+"-p99-ns")
	}
	b.ReportMetric(float64(calls)/float64(b.N*len(engines)), "tokencalls/op")
}

// grantsDue is one engine of BenchmarkGrantsDue: its token server, its
// replicas (each with a Coordinator of newCoord, or one replica without
// when newCoord is nil), its due grants and the latencies of its waves.
type grantsDue struct {
	engine   string
	newCoord func(b *testing.B) core.Coordinator

	clock    *smarttest.Clock
	srv      *smarttest.Server
	reps     []*core.Refresher
	sms      []*scs.SessionManager
	sessions []string
	calls    int // the server's token calls before the first wave
	waves    int
	latency  []time.Duration
}

func (g *grantsDue) setUp(b *testing.B) {
	g.clock = smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	g.srv = smarttest.NewServer(smarttest.Options{Now: g.clock.Now, AccessTokenTTL: time.Hour})
	b.Cleanup(g.srv.Close)
	g.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		time.Sleep(benchServiceTime)
		next.ServeHTTP(w, r)
	})
	store := scs.New().Store
	o := g.srv.Options()
	for range benchReplicas {
		sm := scs.New()
		sm.Store = store
		cfg := core.Config{TokenURL: g.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			AuthMethod: o.AuthMethod, Sessions: sm, Now: g.clock.Now, Logger: slog.New(slog.DiscardHandler)}
		if g.newCoord != nil {
			cfg.Coordinator = g.newCoord(b)
		}
		r, err := core.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		g.reps, g.sms = append(g.reps, r), append(g.sms, sm)
		if g.newCoord == nil {
			// One process: every request goes to it.
			g.reps, g.sms = slices.Repeat(g.reps, benchReplicas), slices.Repeat(g.sms, benchReplicas)
			break
		}
	}
	g.sessions = make([]string, benchGrants)
	for i := range g.sessions {
		ctx, err := g.sms[0].Load(context.Background(), "")
		if err != nil {
			b.Fatal(err)
		}
		if err := g.reps[0].Save(ctx, g.srv.Grant()); err != nil {
			b.Fatal(err)
		}
		g.sessions[i] = g.sms[0].Token(ctx)
		if _, _, err := g.sms[0].Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	g.calls = g.srv.RefreshCalls()
}

// wave makes every grant due and requests each on every replica at once;
// only the requests are timed.
func (g *grantsDue) wave(b *testing.B) {
	b.StopTimer()
	g.clock.Advance(time.Hour)
	start := make(chan struct{})
	var loaded, wg sync.WaitGroup
	took := make([]time.Duration, benchGrants*benchReplicas)
	for i := range took {
		loaded.Add(1)
		wg.Go(func() {
			rep := i % benchReplicas
			ctx, err := g.sms[rep].Load(context.Background(), g.sessions[i/benchReplicas])
			loaded.Done()
			if err != nil {
				b.Error(err)
				return
			}
			<-start
			t0 := time.Now()
			if _, err := g.reps[rep].Token(ctx); err != nil {
				b.Errorf("engine %s: %v", g.engine, err)
			}
			g.sms[rep].Commit(ctx)
			took[i] = time.Since(t0)
		})
	}
	loaded.Wait()
	b.StartTimer()
	close(start)
	wg.Wait()
	g.latency = append(g.latency, took...)
	g.waves++
}

// check fails b unless every wave made exactly one token call per grant,
// with no reuse, and returns the token calls.
func (g *grantsDue) check(b *testing.B) int {
	n := g.srv.RefreshCalls() - g.calls
	if n != benchGrants*g.waves {
		b.Fatalf("engine %s: %d token calls for %d waves of %d due grants", g.engine, n, g.waves, benchGrants)
	}
	if r := g.srv.Reuses(); r != 0 {
		b.Fatalf("engine %s: %d reuses", g.engine, r)
	}
	return n
}
