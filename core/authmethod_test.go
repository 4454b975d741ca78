package core_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// withKey configures private_key_jwt with key and the server's kid.
func withKey(key crypto.Signer, kid string) func(*core.Config) {
	return func(c *core.Config) {
		c.AuthMethod, c.ClientSecret, c.PrivateKey, c.KeyID = core.PrivateKeyJWT, "", key, kid
	}
}

// jwtOptions is a strict server that knows the client by pub.
func jwtOptions(pub crypto.PublicKey) smarttest.Options {
	return smarttest.Options{AuthMethod: core.PrivateKeyJWT, ClientPublicKey: pub, ClientKeyID: "key-1"}
}

// formCapture records the forms the token endpoint receives.
type formCapture struct {
	mu    sync.Mutex
	forms []url.Values
}

func (c *formCapture) hook(w http.ResponseWriter, r *http.Request, next http.Handler) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	c.mu.Lock()
	c.forms = append(c.forms, form)
	c.mu.Unlock()
	next.ServeHTTP(w, r)
}

func TestAuthMethodsEndToEnd(t *testing.T) {
	rsaHSM, ecHSM := &hsmSigner{inner: rsaKey()}, &hsmSigner{inner: ecKey()}
	tests := []struct {
		name string
		opts smarttest.Options
		edit func(*core.Config)
		hsm  *hsmSigner
		alg  string
	}{
		{name: "client_secret_post", opts: smarttest.Options{AuthMethod: core.ClientSecretPost}},
		{name: "client_secret_basic", opts: smarttest.Options{AuthMethod: core.ClientSecretBasic, ClientSecret: "s3cret:with/odd+chars"}},
		{name: "none", opts: smarttest.Options{AuthMethod: core.None}},
		{name: "private_key_jwt RS384", opts: jwtOptions(&rsaKey().PublicKey), edit: withKey(rsaKey(), "key-1"), alg: "RS384"},
		{name: "private_key_jwt ES384", opts: jwtOptions(&ecKey().PublicKey), edit: withKey(ecKey(), "key-1"), alg: "ES384"},
		{name: "private_key_jwt RS384 opaque signer", opts: jwtOptions(rsaKey().Public()), edit: withKey(rsaHSM, "key-1"), hsm: rsaHSM, alg: "RS384"},
		{name: "private_key_jwt ES384 opaque signer", opts: jwtOptions(ecKey().Public()), edit: withKey(ecHSM, "key-1"), hsm: ecHSM, alg: "ES384"},
		{name: "private_key_jwt explicit SigningAlg", opts: jwtOptions(&ecKey().PublicKey),
			edit: func(c *core.Config) { withKey(ecKey(), "key-1")(c); c.SigningAlg = core.ES384 }, alg: "ES384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edits []func(*core.Config)
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			f := newFixture(t, tt.opts, edits...)
			capture := &formCapture{}
			f.srv.SetTokenHook(capture.hook)
			session, saved := f.login()
			for i := range 3 {
				f.clock.Advance(time.Hour)
				tok, err := f.token(session)
				if err != nil {
					t.Fatalf("refresh %d: %v", i, err)
				}
				if tok.Patient != saved.Patient {
					t.Errorf("launch context lost")
				}
			}
			if c := f.srv.RefreshCalls(); c != 3 {
				t.Errorf("refresh calls = %d, want 3", c)
			}
			if tt.hsm != nil && tt.hsm.calls.Load() != 3 {
				t.Errorf("opaque signer used %d times, want 3", tt.hsm.calls.Load())
			}
			for _, form := range capture.forms {
				_, hasSecret := form["client_secret"]
				_, hasAssertion := form["client_assertion"]
				if hasSecret != (tt.opts.AuthMethod == core.ClientSecretPost) || hasAssertion != (tt.alg != "") {
					t.Errorf("form carries client_secret %v, client_assertion %v", hasSecret, hasAssertion)
				}
				if tt.alg != "" {
					checkAssertion(t, form, f.srv.TokenURL, tt.alg, f.clock.Now())
				}
			}
			f.checkNoReuse()
		})
	}
}

// checkAssertion checks the client assertion in form as SMART describes it
// (the server has verified its signature).
func checkAssertion(t *testing.T, form url.Values, tokenURL, alg string, now time.Time) {
	t.Helper()
	if form.Get("client_assertion_type") != core.ClientAssertionType {
		t.Errorf("client_assertion_type = %q", form.Get("client_assertion_type"))
	}
	jws, err := jose.ParseSignedCompact(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	if h.Algorithm != alg || h.KeyID != "key-1" || h.ExtraHeaders[jose.HeaderType] != "JWT" {
		t.Errorf("header alg %q kid %q typ %v", h.Algorithm, h.KeyID, h.ExtraHeaders[jose.HeaderType])
	}
	var c struct {
		Iss, Sub, Aud, Jti string
		Exp, Iat           int64
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Iss != "smart-client" || c.Sub != "smart-client" || c.Aud != tokenURL || c.Jti == "" {
		t.Errorf("claims %+v", c)
	}
	if c.Iat > now.Unix() || c.Exp <= c.Iat || c.Exp-c.Iat > 300 {
		t.Errorf("iat %d exp %d: exp must be at most 5 minutes ahead", c.Iat, c.Exp)
	}
}

func TestAssertionJTIIsUniquePerRefresh(t *testing.T) {
	f := newFixture(t, jwtOptions(&ecKey().PublicKey), withKey(ecKey(), "key-1"))
	capture := &formCapture{}
	f.srv.SetTokenHook(capture.hook)
	session, _ := f.login()
	// Refreshes within the same second: only jti tells them apart.
	for i := range 5 {
		f.clock.Advance(time.Hour)
		if _, err := f.token(session); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	for _, form := range capture.forms {
		a := form.Get("client_assertion")
		jws, err := jose.ParseSignedCompact(a, []jose.SignatureAlgorithm{jose.ES384})
		if err != nil {
			t.Fatal(err)
		}
		var c struct{ Jti string }
		json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
		if seen[c.Jti] || seen[a] {
			t.Fatalf("jti %q or assertion sent twice", c.Jti)
		}
		seen[c.Jti], seen[a] = true, true
	}
	if len(capture.forms) != 5 {
		t.Errorf("%d token calls, want 5", len(capture.forms))
	}
}

// TestAuthMethodMismatch: a client configured differently from the server
// fails with ErrMisconfigured after one token call, keeps its token and
// never tries another method.
func TestAuthMethodMismatch(t *testing.T) {
	otherRSA := &hsmSigner{inner: ecKey()} // an ECDSA key where RSA is registered
	tests := []struct {
		name string
		opts smarttest.Options
		edit func(*core.Config)
	}{
		{"post client, basic server", smarttest.Options{AuthMethod: core.ClientSecretBasic},
			func(c *core.Config) { c.AuthMethod = core.ClientSecretPost }},
		{"basic client, post server", smarttest.Options{AuthMethod: core.ClientSecretPost},
			func(c *core.Config) { c.AuthMethod = core.ClientSecretBasic }},
		{"wrong secret", smarttest.Options{},
			func(c *core.Config) { c.ClientSecret = "wrong" }},
		{"public client, confidential server", smarttest.Options{},
			func(c *core.Config) { c.AuthMethod, c.ClientSecret = core.None, "" }},
		{"post client, private_key_jwt server", jwtOptions(&rsaKey().PublicKey),
			func(c *core.Config) { c.AuthMethod, c.ClientSecret = core.ClientSecretPost, "smart-secret" }},
		{"private_key_jwt client, post server", smarttest.Options{}, withKey(rsaKey(), "key-1")},
		{"wrong key type", jwtOptions(&rsaKey().PublicKey), withKey(otherRSA, "key-1")},
		{"wrong kid", jwtOptions(&rsaKey().PublicKey), withKey(rsaKey(), "key-2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts, tt.edit)
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			_, err := f.token(session)
			if !errors.Is(err, core.ErrMisconfigured) {
				t.Fatalf("err = %v, want ErrMisconfigured", err)
			}
			var te *core.TokenError
			if !errors.As(err, &te) || te.Code != "invalid_client" {
				t.Errorf("err = %#v, want invalid_client", err)
			}
			if c := f.srv.RefreshCalls(); c != 1 {
				t.Errorf("refresh calls = %d, want exactly 1 (no retry, no other method)", c)
			}
			if _, err := f.r.Info(f.request(session)); err != nil {
				t.Errorf("token not kept: %v", err)
			}
			f.checkNoReuse()
		})
	}
}

func TestScopeDownscoping(t *testing.T) {
	t.Run("subset", func(t *testing.T) {
		f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Scope = "patient/*.read offline_access" })
		session, _ := f.login()
		f.clock.Advance(time.Hour)
		tok, err := f.token(session)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Scope != "patient/*.read offline_access" {
			t.Errorf("scope = %q", tok.Scope)
		}
		f.checkNoReuse()
	})
	t.Run("superset", func(t *testing.T) {
		f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.Scope = "patient/*.read patient/*.write offline_access" })
		session, _ := f.login()
		f.clock.Advance(time.Hour)
		_, err := f.token(session)
		var te *core.TokenError
		if !errors.Is(err, core.ErrMisconfigured) || !errors.As(err, &te) || te.Code != "invalid_scope" {
			t.Fatalf("err = %v, want invalid_scope (ErrMisconfigured)", err)
		}
		if !strings.Contains(err.Error(), "check Scope") {
			t.Errorf("no hint: %v", err)
		}
		if _, err := f.r.Info(f.request(session)); err != nil {
			t.Errorf("token not kept: %v", err)
		}
	})
}

func TestAnswerLargerThan1MiB(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"at","token_type":"Bearer","padding":"`)
		io.WriteString(w, strings.Repeat("x", 2<<20))
		io.WriteString(w, `"}`)
	})
	f.clock.Advance(time.Hour)
	_, err := f.token(session)
	var re *core.ResponseError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "larger than 1 MiB") || !errors.Is(err, core.ErrTransient) {
		t.Fatalf("err = %v, want a ResponseError about the size", err)
	}
	if len(err.Error()) > 512 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
	if _, err := f.r.Info(f.request(session)); err != nil {
		t.Errorf("token not kept: %v", err)
	}
}

// TestSnippetNeverEchoesSecrets: servers that echo what they received in a
// non-JSON answer get a Snippet in the error, without the secrets.
func TestSnippetNeverEchoesSecrets(t *testing.T) {
	tests := []struct {
		name   string
		opts   smarttest.Options
		edit   []func(*core.Config)
		status int
	}{
		{"client_secret_post at 502", smarttest.Options{ClientSecret: "Sekr3t/+=&pw"}, nil, 502},
		{"client_secret_basic at 400", smarttest.Options{AuthMethod: core.ClientSecretBasic, ClientSecret: "Sekr3t/+=&pw"}, nil, 400},
		{"private_key_jwt at 200", jwtOptions(&ecKey().PublicKey), []func(*core.Config){withKey(ecKey(), "key-1")}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.opts, tt.edit...)
			session, saved := f.login()
			var echoed []string
			f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				body, _ := io.ReadAll(r.Body)
				form, _ := url.ParseQuery(string(body))
				echoed = []string{form.Get("refresh_token"), form.Get("client_secret"), form.Get("client_assertion"), r.Header.Get("Authorization")}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(tt.status)
				// The secrets right at the start, raw, form-encoded and as the
				// whole request, so that they would fall inside any snippet.
				io.WriteString(w, "<p>"+form.Get("refresh_token")+" "+r.Header.Get("Authorization")+"</p>\n<pre>"+
					url.QueryEscape(form.Get("client_secret"))+" "+form.Get("client_assertion")+"</pre>"+form.Get("client_secret"))
			})
			f.clock.Advance(time.Hour)
			_, err := f.token(session)
			if err == nil {
				t.Fatal("accepted an HTML answer")
			}
			msg := err.Error()
			if !strings.Contains(msg, "[REDACTED]") || !strings.Contains(msg, "text/html") || !strings.Contains(msg, "<p>") {
				t.Errorf("error lacks a redacted snippet or the content type: %s", msg)
			}
			secrets := []string{saved.RefreshToken, "Sekr3t", url.QueryEscape("Sekr3t/+=&pw")}
			for _, e := range echoed {
				if len(e) > 8 {
					secrets = append(secrets, e, strings.TrimPrefix(e, "Basic "))
				}
			}
			for _, s := range secrets {
				if s != "" && strings.Contains(msg, s) {
					t.Errorf("error echoes a secret (%.6s…): %s", s, msg)
				}
			}

			// A body that names token fields may carry a token the client
			// does not know: no snippet at all.
			f.srv.SetTokenHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				body, _ := io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tt.status)
				w.Write(body)
			})
			_, err = f.token(session)
			var te *core.TokenError
			var re *core.ResponseError
			if errors.As(err, &te) && te.Snippet != "" || errors.As(err, &re) && re.Snippet != "" {
				t.Errorf("snippet of a body with token fields: %v", err)
			}
		})
	}
}
