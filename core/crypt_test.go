package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

func newKey() []byte {
	k := make([]byte, core.EncryptionKeySize)
	rand.Read(k)
	return k
}

// stored returns the session's blob as the store holds it.
func (f *fixture) stored(session string) []byte {
	f.t.Helper()
	b, found, err := f.sm.Store.Find(session)
	if err != nil || !found {
		f.t.Fatalf("session not in the store: %v", err)
	}
	return b
}

// TestEncryptionAtRest: with EncryptionKeys the session store never holds a
// token in the clear, and everything works as without.
func TestEncryptionAtRest(t *testing.T) {
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) {
		c.EncryptionKeys = [][]byte{newKey()}
	})
	session, saved := f.login()
	f.clock.Advance(time.Hour)
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{saved.AccessToken, saved.RefreshToken, tok.AccessToken, tok.RefreshToken}

	blob := f.stored(session)
	_, values, err := scs.GobCodec{}.Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := values[core.DefaultSessionKey].(string)
	if !ok || !strings.HasPrefix(v, "smartrefresh.sealed.v1:") {
		t.Fatalf("session value is a %T, want a sealed string", values[core.DefaultSessionKey])
	}
	for _, s := range secrets {
		if bytes.Contains(blob, []byte(s)) || strings.Contains(v, s) {
			t.Errorf("the stored session holds a token in the clear")
		}
	}
	if bytes.Contains(blob, []byte("need_patient_banner")) {
		t.Errorf("the stored session holds the launch context in the clear")
	}
	// The inspection works: without keys the store holds the token as is.
	plain := newFixture(t, smarttest.Options{})
	plainSession, plainToken := plain.login()
	if !bytes.Contains(plain.stored(plainSession), []byte(plainToken.AccessToken)) {
		t.Fatal("test broken: the plain session blob does not show the token")
	}

	again, err := f.token(session)
	if err != nil || again.AccessToken != tok.AccessToken || again.Patient != saved.Patient ||
		again.Extra["need_patient_banner"] != true || !again.Expiry.Equal(tok.Expiry) {
		t.Fatalf("decrypted token differs: %v, %v", again, err)
	}
	info, err := f.r.Info(f.request(session))
	if err != nil || info.Refreshes != 1 {
		t.Errorf("Info = %+v, %v", info, err)
	}
	f.checkNoReuse()
}

// TestEncryptionKeyRotation: a new key put first encrypts from then on;
// the old one still decrypts until it is dropped.
func TestEncryptionKeyRotation(t *testing.T) {
	oldKey, newKey := newKey(), newKey()
	f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.EncryptionKeys = [][]byte{oldKey} })
	session, saved := f.login()

	refresher := func(keys ...[]byte) *core.Refresher {
		o := f.srv.Options()
		r, err := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			AuthMethod: o.AuthMethod, Sessions: f.sm, Now: f.clock.Now, EncryptionKeys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rotated := refresher(newKey, oldKey)
	if tok, err := rotated.Token(f.request(session)); err != nil || tok.AccessToken != saved.AccessToken {
		t.Fatalf("new key first, old key second: %v", err)
	}
	f.clock.Advance(time.Hour)
	ctx := f.request(session)
	if _, err := rotated.Token(ctx); err != nil { // refreshes, sealing with the new key
		t.Fatal(err)
	}
	f.end(ctx)
	if _, err := refresher(newKey).Token(f.request(session)); err != nil {
		t.Errorf("the old key dropped: %v", err)
	}
	// A process with only the old key leaves the value alone: a replica
	// with the new key can still use it.
	ctx = f.request(session)
	if _, err := refresher(oldKey).Token(ctx); !errors.Is(err, core.ErrUnknownEncryptionKey) || !errors.Is(err, core.ErrTransient) {
		t.Errorf("only the old key: %v, want ErrUnknownEncryptionKey", err)
	}
	f.end(ctx)
	if _, err := refresher(newKey).Token(f.request(session)); err != nil {
		t.Errorf("after a process without the key met it: %v", err)
	}
}

// TestEncryptionRejects: a value that fails to decrypt under a key this
// process has (tampered, truncated, moved from another session key) or is
// not sealed at all is removed and the user must authorize again.
func TestEncryptionRejects(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(f *fixture, ctx context.Context, key []byte)
	}{
		{"flipped bit", func(f *fixture, ctx context.Context, key []byte) {
			v := []byte(f.sm.Get(ctx, core.DefaultSessionKey).(string))
			i := len(v) / 2
			v[i] = map[bool]byte{true: 'B', false: 'A'}[v[i] == 'A']
			f.sm.Put(ctx, core.DefaultSessionKey, string(v))
		}},
		{"truncated", func(f *fixture, ctx context.Context, key []byte) {
			v := f.sm.Get(ctx, core.DefaultSessionKey).(string)
			f.sm.Put(ctx, core.DefaultSessionKey, v[:len("smartrefresh.sealed.v1:")+10])
		}},
		{"not base64", func(f *fixture, ctx context.Context, key []byte) {
			f.sm.Put(ctx, core.DefaultSessionKey, "smartrefresh.sealed.v1:!!!")
		}},
		{"legacy bytes, flipped bit", func(f *fixture, ctx context.Context, key []byte) {
			v := f.sm.Get(ctx, core.DefaultSessionKey).(string)
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(v, "smartrefresh.sealed.v1:"))
			if err != nil {
				f.t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			f.sm.Put(ctx, core.DefaultSessionKey, b)
		}},
		{"empty string", func(f *fixture, ctx context.Context, key []byte) { f.sm.Put(ctx, core.DefaultSessionKey, "") }},
		{"empty", func(f *fixture, ctx context.Context, key []byte) { f.sm.Put(ctx, core.DefaultSessionKey, []byte{}) }},
		{"moved from another session key", func(f *fixture, ctx context.Context, key []byte) {
			other, _ := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm,
				SessionKey: "elsewhere", EncryptionKeys: [][]byte{key}})
			other.Save(ctx, &core.Token{AccessToken: "other"})
			f.sm.Put(ctx, core.DefaultSessionKey, f.sm.Get(ctx, "elsewhere"))
		}},
		{"stored in the clear", func(f *fixture, ctx context.Context, key []byte) {
			plain, _ := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm})
			plain.Save(ctx, &core.Token{AccessToken: "plain"})
		}},
		{"a string", func(f *fixture, ctx context.Context, key []byte) { f.sm.Put(ctx, core.DefaultSessionKey, "token") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newKey()
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.EncryptionKeys = [][]byte{key} })
			session, _ := f.login()
			ctx := f.request(session)
			tt.tamper(f, ctx, key)
			if _, err := f.r.Token(ctx); !errors.Is(err, core.ErrCorruptSession) || !errors.Is(err, core.ErrReauthRequired) {
				t.Fatalf("err = %v, want ErrCorruptSession", err)
			}
			if f.sm.Exists(ctx, core.DefaultSessionKey) {
				t.Error("the value was not removed")
			}
		})
	}
}

// TestUnknownKeyLeavesTheValue: a value sealed with a key this process
// does not have (another key, or none at all: encryption turned off) may
// be a good token for a replica that has it. It stays in the session and
// the request fails as transient; with the key as a decrypt-only key the
// same process reads it.
func TestUnknownKeyLeavesTheValue(t *testing.T) {
	for _, tt := range []struct {
		name string
		keys [][]byte
	}{{"another key", [][]byte{newKey()}}, {"no keys", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{}, func(c *core.Config) { c.EncryptionKeys = tt.keys })
			key := newKey()
			ctx := f.request("")
			sealing, _ := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm,
				EncryptionKeys: [][]byte{key}})
			if err := sealing.Save(ctx, &core.Token{AccessToken: "sealed", RefreshToken: "rt-never-logged"}); err != nil {
				t.Fatal(err)
			}
			before := f.sm.Get(ctx, core.DefaultSessionKey)
			_, err := f.r.Token(ctx)
			if !errors.Is(err, core.ErrUnknownEncryptionKey) || !errors.Is(err, core.ErrTransient) || core.StatusCode(err) != 503 {
				t.Fatalf("err = %v, want ErrUnknownEncryptionKey (503)", err)
			}
			if f.sm.Get(ctx, core.DefaultSessionKey) != before {
				t.Fatal("the value was changed")
			}
			if err := f.r.Logout(ctx); !errors.Is(err, core.ErrUnknownEncryptionKey) || !f.sm.Exists(ctx, core.DefaultSessionKey) {
				t.Fatalf("Logout = %v; the value must stay and Logout must say it did nothing", err)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "cannot read") || strings.Contains(logs, "rt-never-logged") ||
				strings.Contains(logs, before.(string)[len("smartrefresh.sealed.v1:"):]) {
				t.Fatalf("logs: want a warning that shows neither the token nor the value:\n%s", logs)
			}
			reader, err := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm,
				EncryptionKeys: tt.keys, DecryptionKeys: [][]byte{key}})
			if err != nil {
				t.Fatal(err)
			}
			if tok, err := reader.Token(ctx); err != nil || tok.AccessToken != "sealed" {
				t.Fatalf("with the key as a decryption key: %v", err)
			}
		})
	}
}

func TestEncryptionKeyValidation(t *testing.T) {
	sm := scs.New()
	for _, keys := range [][][]byte{
		{make([]byte, 16)},
		{newKey(), make([]byte, 31)},
		{nil},
	} {
		_, err := core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm, EncryptionKeys: keys})
		var ce *core.ConfigError
		if !errors.As(err, &ce) || ce.Field != "EncryptionKeys" {
			t.Errorf("%d keys: %v, want a ConfigError for EncryptionKeys", len(keys), err)
		}
		_, err = core.New(core.Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm,
			EncryptionKeys: [][]byte{newKey()}, DecryptionKeys: keys})
		if !errors.As(err, &ce) || ce.Field != "DecryptionKeys" {
			t.Errorf("%d decryption keys: %v, want a ConfigError for DecryptionKeys", len(keys), err)
		}
	}
}
