package coordtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// BenchmarkRefresh measures one refresh of a session's token, end to end:
// the token is due, Token makes the token call (to a local mock server)
// and stores the result, with the Coordinator newCoord returns, or none
// when newCoord is nil. The difference between the two is what the
// Coordinator adds to a refresh (its lock, the look-up of a record, the
// record, the unlock). Sessions stay in memory, so that only the
// Coordinator differs.
func BenchmarkRefresh(b *testing.B, newCoord func(b *testing.B) core.Coordinator) {
	clock := smarttest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now, AccessTokenTTL: time.Hour})
	defer srv.Close()
	sm := scs.New()
	o := srv.Options()
	cfg := core.Config{
		TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: clock.Now,
		Logger: slog.New(slog.DiscardHandler),
	}
	if newCoord != nil {
		cfg.Coordinator = newCoord(b)
	}
	r, err := core.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, err := sm.Load(context.Background(), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Save(ctx, srv.Grant()); err != nil {
		b.Fatal(err)
	}
	session := sm.Token(ctx)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		clock.Advance(time.Hour)
		ctx, err := sm.Load(context.Background(), session)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := r.Token(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := srv.Reuses(); n != 0 {
		b.Fatalf("%d reuses", n)
	}
}
