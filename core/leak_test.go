package core_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestNoFreshTokenInErrors: a token endpoint whose answer carries newly
// issued tokens that the client cannot use, spelled so that a search of
// the raw bytes for "access_token" misses them (JSON escapes), cut short,
// or next to an OAuth error, leaks none of them into the error, the logs
// (debug level) or OnRefreshError.
func TestNoFreshTokenInErrors(t *testing.T) {
	const (
		at = "AT-fresh-0123456789abcdef"
		rt = "RT-fresh-0123456789abcdef"
	)
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
	}{
		{"escaped keys, DPoP at 200", 200, "application/json",
			`{"\u0061ccess_token":"` + at + `","token_type":"DPoP","refresh\u005ftoken":"` + rt + `"}`},
		{"escaped keys, unknown token type at 200", 200, "application/json",
			`{"\u0061ccess_token":"` + at + `","token_type":"` + at + `"}`},
		{"escaped keys, no access token at 200", 200, "application/json",
			`{"ACCESS\u005FTOKEN":"` + at + `","nested":{"r\u0065fresh_token":"` + rt + `"}}`},
		{"escaped keys at 200, text/plain", 200, "text/plain",
			`{"\u0061ccess_token":"` + at + `","token_type":"DPoP"}`},
		{"escaped keys, cut short, at 500", 500, "application/json",
			`{"token_type":"Bearer","\u0061ccess_token":"` + at + `","refresh\u005ftoken":"` + rt},
		{"escaped keys in a JSON array at 502", 502, "application/json",
			`[{"\u0061ccess_token":"` + at + `"}]`},
		{"percent-escaped field name in text at 503", 503, "text/plain",
			`access%5Ftoken=` + at},
		{"OAuth error echoing a fresh token", 400, "application/json",
			`{"error":"invalid_request","error_description":"issued ` + at + `","\u0061ccess_token":"` + at + `"}`},
		{"non-JSON 200 carrying a token", 200, "text/plain", at},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var hooked []string
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
				c.OnRefreshError = func(info core.RefreshErrorInfo) {
					mu.Lock()
					defer mu.Unlock()
					hooked = append(hooked, fmt.Sprintf("%v %+v %#v", info.Err, info.Err, info.Err))
				}
				c.OnReauth = func(info core.ReauthInfo) {
					mu.Lock()
					defer mu.Unlock()
					hooked = append(hooked, fmt.Sprintf("%v %+v %#v", info.Reason, info.Reason, info.Reason))
				}
			})
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			_, err := f.token(session)
			if err == nil {
				t.Fatal("accepted an unusable answer")
			}
			mu.Lock()
			text := fmt.Sprintf("%v\n%+v\n%#v\n%s\n%s", err, err, err, strings.Join(hooked, "\n"), f.logs.String())
			mu.Unlock()
			var te *core.TokenError
			var re *core.ResponseError
			if errors.As(err, &te) {
				text += te.Snippet + te.Description + te.Code + te.URI
			}
			if errors.As(err, &re) {
				text += re.Snippet + re.Reason
			}
			for _, secret := range []string{at, rt} {
				if strings.Contains(text, secret) {
					t.Errorf("%s leaked:\n%s", secret, text)
				}
			}
		})
	}
}
