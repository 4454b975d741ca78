package adaptertest

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// SpellTokenType makes srv behave like the certified servers that answer
// token_type in another spelling than "Bearer" (SMART's refresh section
// writes "bearer"), in front of a resource server that checks the scheme
// case-sensitively, as many do (startsWith("Bearer ")): every token answer
// carries token_type spelling, and every FHIR request whose Authorization
// header does not start with exactly "Bearer " gets a 401. It returns a
// function that gives a grant of srv spelled the same way, for Save.
func SpellTokenType(srv *smarttest.Server, spelling string) func() *core.Token {
	srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var answer map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &answer) == nil {
			answer["token_type"] = spelling
			body, _ = json.Marshal(answer)
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
	srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "the Authorization scheme must be exactly Bearer", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
	return func() *core.Token {
		tok := srv.Grant()
		tok.TokenType = spelling
		return tok
	}
}

// CanonicalBearer: with a server that spells token_type "bearer" or
// "BEARER" (in the saved grant and in every refresh answer) and a resource
// server that accepts only "Bearer ", /api/patient works through the app's
// Client before a refresh, after a refresh at expiry and after a refresh
// forced by a 401, and the token keeps the server's raw spelling. app must
// save the grant of Env.Grant at /login.
func CanonicalBearer(t *testing.T, app App) {
	for _, spelling := range []string{"bearer", "BEARER"} {
		t.Run(spelling, func(t *testing.T) {
			f := NewEnv(t)
			f.Grant = SpellTokenType(f.Server, spelling)
			f.URL = f.Serve(app(f, f.Refresher))
			f.Login()
			patient := func(when string) {
				t.Helper()
				if code, _, body := f.Get(f.URL, "/api/patient"); code != http.StatusOK || !bytes.Contains([]byte(body), []byte(`"Patient"`)) {
					t.Fatalf("%s: /api/patient: %d %s", when, code, body)
				}
			}
			patient("before a refresh")
			f.Clock.Advance(time.Hour + time.Second)
			patient("after a refresh at expiry")
			f.Server.ExpireAccessTokens()
			patient("after a refresh forced by a 401")
			if f.Server.RefreshCalls() != 2 || f.Server.Reuses() != 0 {
				t.Errorf("RefreshCalls=%d Reuses=%d, want 2 and 0", f.Server.RefreshCalls(), f.Server.Reuses())
			}
			ctx := f.LoggedIn()
			if tok, err := f.Refresher.Token(ctx); err != nil || tok.TokenType != spelling || tok.Type() != "Bearer" {
				t.Errorf("Token: %v %v; want TokenType %q (the server's) and Type Bearer", tok, err, spelling)
			}
		})
	}
}
