package core

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func TestNewValidatesConfig(t *testing.T) {
	sm := scs.New()
	ok := Config{TokenURL: "https://ehr.example/token", ClientID: "c", ClientSecret: "s", AuthMethod: ClientSecretPost, Sessions: sm}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" when valid
	}{
		{"valid", func(*Config) {}, ""},
		{"public client defaults to none", func(c *Config) { c.ClientSecret, c.AuthMethod = "", "" }, ""},
		{"loopback http", func(c *Config) { c.TokenURL = "http://127.0.0.1:9000/token" }, ""},
		{"localhost http", func(c *Config) { c.TokenURL = "http://localhost/token" }, ""},
		{"ipv6 loopback http", func(c *Config) { c.TokenURL = "http://[::1]:8080/token" }, ""},
		{"no token URL", func(c *Config) { c.TokenURL = "" }, "TokenURL"},
		{"plain http", func(c *Config) { c.TokenURL = "http://ehr.example/token" }, "TokenURL"},
		{"relative URL", func(c *Config) { c.TokenURL = "/oauth/token" }, "TokenURL"},
		{"bad scheme", func(c *Config) { c.TokenURL = "ftp://ehr.example/token" }, "TokenURL"},
		{"credentials in URL", func(c *Config) { c.TokenURL = "https://u:p@ehr.example/token" }, "TokenURL"},
		{"no client id", func(c *Config) { c.ClientID = "" }, "ClientID"},
		{"no sessions", func(c *Config) { c.Sessions = nil }, "Sessions"},
		{"secret without method", func(c *Config) { c.AuthMethod = "" }, "AuthMethod"},
		{"post without secret", func(c *Config) { c.ClientSecret = "" }, "ClientSecret"},
		{"basic without secret", func(c *Config) { c.ClientSecret, c.AuthMethod = "", ClientSecretBasic }, "ClientSecret"},
		{"none with secret", func(c *Config) { c.AuthMethod = None }, "AuthMethod"},
		{"unknown method", func(c *Config) { c.AuthMethod = "client_secret_jwt" }, "AuthMethod"},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }, "Leeway"},
		{"negative timeout", func(c *Config) { c.RefreshTimeout = -time.Second }, "RefreshTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := New(cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("New error = %v, want a ConfigError for %s", err, tt.field)
			}
			if !errors.Is(err, ErrMisconfigured) {
				t.Errorf("ConfigError does not match ErrMisconfigured")
			}
		})
	}
}

func TestDue(t *testing.T) {
	now := t0
	r, err := New(Config{TokenURL: "https://e/token", ClientID: "c", Sessions: scs.New(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		obtained time.Time
		expiry   time.Time
		want     bool
	}{
		{"no expiry is never due", now.Add(-time.Hour), time.Time{}, false},
		{"an hour left", now, now.Add(time.Hour), false},
		{"61s left of an hour", now.Add(-59 * time.Minute), now.Add(61 * time.Second), false},
		{"59s left of an hour", now.Add(-59 * time.Minute), now.Add(59 * time.Second), true},
		{"expired", now.Add(-time.Hour), now.Add(-time.Second), true},
		{"fresh 30s demo token is not due", now, now.Add(30 * time.Second), false},
		{"30s token with 8s left", now.Add(-22 * time.Second), now.Add(8 * time.Second), false},
		{"30s token with 7s left", now.Add(-23 * time.Second), now.Add(7 * time.Second), true},
		{"fresh 5s token", now, now.Add(5 * time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record{Token: Token{AccessToken: "a", Expiry: tt.expiry}, Obtained: tt.obtained}
			if got := r.due(rec); got != tt.want {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigRedactsItself(t *testing.T) {
	cfg := Config{TokenURL: "https://ehr.example/token", ClientID: "client-1", ClientSecret: "CS-secret-123",
		AuthMethod: ClientSecretPost, PrivateKey: testEC(), KeyID: "kid-1", RevocationURL: "https://ehr.example/revoke",
		EncryptionKeys: [][]byte{[]byte("EK-secret-0123456789abcdefghijklm")}, Sessions: scs.New()}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cfg", cfg, "ptr", &cfg)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cfg", cfg)
	d := testEC().D.String()
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg), "%+v ptr": fmt.Sprintf("%+v", &cfg), "%#v ptr": fmt.Sprintf("%#v", &cfg),
		"%q": fmt.Sprintf("%q", cfg), "%x": fmt.Sprintf("%x", cfg), "String": cfg.String(), "slog": logs.String(),
		"struct": fmt.Sprintf("%+v", struct{ C Config }{cfg}),
	}
	for name, out := range outputs {
		for _, secret := range []string{"CS-secret", "EK-secret", d, fmt.Sprint(testEC().D.Bytes())} {
			if strings.Contains(out, secret) {
				t.Errorf("%s leaks a secret: %s", name, out)
			}
		}
		if !strings.Contains(out, "client-1") && name != "%x" {
			t.Errorf("%s hides the client id: %s", name, out)
		}
	}
	if !strings.Contains(outputs["%+v"], "ClientSecret:[REDACTED]") || !strings.Contains(outputs["%+v"], "PrivateKey:[REDACTED]") {
		t.Errorf("%%+v: %s", outputs["%+v"])
	}
}

func TestPresetConfig(t *testing.T) {
	cfg := HealthGorillaSandbox.Config(Config{ClientID: "c", ClientSecret: "s", Sessions: scs.New()})
	if cfg.TokenURL != "https://sandbox.healthgorilla.com/oauth/token" || cfg.AuthMethod != ClientSecretPost ||
		cfg.RevocationURL != "https://sandbox.healthgorilla.com/oauth/cancel" || cfg.RevocationStyle != RevokeQueryGET {
		t.Errorf("Config = %+v", cfg)
	}
	if _, err := New(cfg); err != nil {
		t.Errorf("New: %v", err)
	}
	// The refresh guide's path, and the base's own choices, win.
	cfg = HealthGorillaProduction.Config(Config{TokenURL: "https://api.healthgorilla.com/oauth2/token",
		RevocationURL: "https://api.healthgorilla.com/oauth/revoke", AuthMethod: ClientSecretBasic, ClientSecret: "s"})
	if cfg.TokenURL != "https://api.healthgorilla.com/oauth2/token" || cfg.AuthMethod != ClientSecretBasic ||
		cfg.RevocationURL != "https://api.healthgorilla.com/oauth/revoke" || cfg.RevocationStyle != RevokeRFC7009 {
		t.Errorf("overrides lost: %+v", cfg)
	}
	// A key-based client does not get a secret method.
	if cfg := HealthGorillaProduction.Config(Config{PrivateKey: testEC()}); cfg.AuthMethod != "" {
		t.Errorf("AuthMethod guessed: %q", cfg.AuthMethod)
	}
	for _, p := range []Preset{HealthGorillaSandbox, HealthGorillaProduction} {
		for _, u := range []string{p.AuthorizeURL, p.TokenURL, p.RevocationURL, p.FHIRBaseURL} {
			if !strings.HasPrefix(u, p.BaseURL+"/") || checkEndpoint(u) != nil {
				t.Errorf("%s: bad URL %q", p.Name, u)
			}
		}
	}
	if RevokeQueryGET.String() != "RevokeQueryGET" || RevocationStyle(9).String() != "RevocationStyle(9)" {
		t.Error("RevocationStyle.String")
	}
}
