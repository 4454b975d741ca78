package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// BenchmarkSessionValue measures Token on a valid token as requests meet
// it: each request loads its own copy of the session from the store, so
// the value is equal to, but not the same string as, the one read before
// (copy=fresh, 256 copies in turn); copy=same reads one loaded copy again,
// as the calls within one request do. For each scs codec, with and
// without EncryptionKeys.
func BenchmarkSessionValue(b *testing.B) {
	srv := smarttest.NewServer(smarttest.Options{AccessTokenTTL: time.Hour})
	b.Cleanup(srv.Close)
	o := srv.Options()
	for _, codec := range []struct {
		name  string
		codec scs.Codec
	}{{"gob", scs.GobCodec{}}, {"json", jsonCodec{}}} {
		for _, enc := range []bool{false, true} {
			sm := scs.New()
			sm.Codec = codec.codec
			cfg := core.Config{TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
				AuthMethod: o.AuthMethod, Sessions: sm}
			if enc {
				cfg.EncryptionKeys = [][]byte{newKey()}
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
			copies := make([]context.Context, 256)
			for i := range copies {
				if copies[i], err = sm.Load(context.Background(), sm.Token(ctx)); err != nil {
					b.Fatal(err)
				}
			}
			for _, fresh := range []bool{false, true} {
				name := fmt.Sprintf("codec=%s/enc=%v/copy=same", codec.name, enc)
				if fresh {
					name = fmt.Sprintf("codec=%s/enc=%v/copy=fresh", codec.name, enc)
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						c := copies[0]
						if fresh {
							c = copies[i%len(copies)]
							i++
						}
						if _, err := r.Token(c); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
