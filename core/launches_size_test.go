package core_test

import (
	"net/http"
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
