package core_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
	v, ok := values[core.DefaultSessionKey].([]byte)
	if !ok {
		t.Fatalf("session value is %T, want []byte", values[core.DefaultSessionKey])
	}
	for _, s := range secrets {
		if bytes.Contains(blob, []byte(s)) || bytes.Contains(v, []byte(s)) {
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
	if _, err := refresher(oldKey).Token(f.request(session)); !errors.Is(err, core.ErrCorruptSession) {
		t.Errorf("only the old key: %v, want ErrCorruptSession", err)
	}
}

// TestEncryptionRejects: a value no key opens is removed and the user must
// authorize again.
func TestEncryptionRejects(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(f *fixture, ctx context.Context, key []byte)
	}{
		{"wrong key", func(f *fixture, ctx context.Context, key []byte) {
			other, _ := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm,
				EncryptionKeys: [][]byte{newKey()}})
			other.Save(ctx, &core.Token{AccessToken: "other"})
		}},
		{"flipped bit", func(f *fixture, ctx context.Context, key []byte) {
			b := bytes.Clone(f.sm.Get(ctx, core.DefaultSessionKey).([]byte))
			b[len(b)/2] ^= 1
			f.sm.Put(ctx, core.DefaultSessionKey, b)
		}},
		{"truncated", func(f *fixture, ctx context.Context, key []byte) {
			b := f.sm.Get(ctx, core.DefaultSessionKey).([]byte)
			f.sm.Put(ctx, core.DefaultSessionKey, b[:10])
		}},
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

// TestSealedValueWithoutEncryption: a sealed value found by a Refresher
// without keys (encryption turned off) is not a token.
func TestSealedValueWithoutEncryption(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	ctx := f.request("")
	sealing, _ := core.New(core.Config{TokenURL: f.srv.TokenURL, ClientID: "x", Sessions: f.sm,
		EncryptionKeys: [][]byte{newKey()}})
	if err := sealing.Save(ctx, &core.Token{AccessToken: "sealed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Token(ctx); !errors.Is(err, core.ErrCorruptSession) {
		t.Fatalf("err = %v, want ErrCorruptSession", err)
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
	}
}
