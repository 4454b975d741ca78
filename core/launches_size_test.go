package core_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestSessionSizePerLaunch measures what the session store holds (scs's
// gob encoding, as memstore, Redis and PostgreSQL keep it) for a session of
// 1 to 4 launches from the strict mock server, with and without
// EncryptionKeys, and checks that each launch adds about the same, under
// 4 KiB. go test -v prints the figures (PERFORMANCE.md).
func TestSessionSizePerLaunch(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		patients := map[string]string{"l1": "P1", "l2": "P2", "l3": "P3", "l4": "P4"}
		a := newLaunchApp(t, launchOptions{server: smarttest.Options{LaunchPatients: patients}, refresher: func(c *core.Config) {
			if encrypted {
				c.EncryptionKeys = [][]byte{newKey()}
			}
		}})
		b := newBrowser(t)
		app, _ := url.Parse(a.url)
		var sizes []int
		for i := range 4 {
			a.ehrLaunch(b, "l"+string(rune('1'+i)))
			var token string
			for _, c := range b.c.Jar.Cookies(app) {
				if c.Name == a.sm.Cookie.Name {
					token = c.Value
				}
			}
			blob, found, err := a.sm.Store.Find(token)
			if err != nil || !found {
				t.Fatalf("the session is not in the store: %v", err)
			}
			sizes = append(sizes, len(blob))
		}
		if res := b.get(a.url + "/me"); res.status != http.StatusOK {
			t.Fatalf("/me: %d", res.status)
		}
		for i := 1; i < len(sizes); i++ {
			if d := sizes[i] - sizes[i-1]; d <= 0 || d > 4096 {
				t.Errorf("encrypted=%v: launch %d added %d bytes", encrypted, i+1, d)
			}
		}
		t.Logf("encrypted=%v: session bytes for 1..4 launches: %v; per launch after the first: %d", encrypted, sizes, (sizes[3]-sizes[0])/3)
	}
}

// BenchmarkLaunchedSession measures the core hot path on a loaded session
// of 1 or 4 launches made by a Launcher, the request naming the most
// recent one: Token (the named launch's valid token) and AttachRequest
// (what the adapters call). Compare launches=4 with launches=1:
//
//	benchstat -filter .name:LaunchedSession -col /launches
func BenchmarkLaunchedSession(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("launches=%d", n), func(b *testing.B) {
			patients := map[string]string{"l1": "P1", "l2": "P2", "l3": "P3", "l4": "P4"}
			a := newLaunchApp(b, launchOptions{server: smarttest.Options{LaunchPatients: patients}})
			a.sm.IdleTimeout = 0
			br := newBrowser(b)
			var id string
			for i := range n {
				id = a.ehrLaunch(br, fmt.Sprintf("l%d", i+1))
			}
			app, _ := url.Parse(a.url)
			var token string
			for _, c := range br.c.Jar.Cookies(app) {
				if c.Name == a.sm.Cookie.Name {
					token = c.Value
				}
			}
			ctx, err := a.sm.Load(context.Background(), token)
			if err != nil {
				b.Fatal(err)
			}
			named := core.WithLaunch(ctx, id)
			b.Run("op=Token", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := a.r.Token(named); err != nil {
						b.Fatal(err)
					}
				}
			})
			req := httptest.NewRequest("GET", "/api/me", nil).WithContext(ctx)
			req.Header.Set(core.LaunchHeader, id)
			b.Run("op=AttachRequest", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := a.r.AttachRequest(req); err != nil {
						b.Fatal(err)
					}
				}
			})
			if c := a.srv.RefreshCalls(); c != 0 {
				b.Fatalf("the hot path made %d refresh calls", c)
			}
		})
	}
}
