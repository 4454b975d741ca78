package core

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

var fuzzKeys = [][]byte{
	bytes.Repeat([]byte{1}, EncryptionKeySize),
	bytes.Repeat([]byte{2}, EncryptionKeySize),
}

func fullRecord() *record {
	return &record{
		Token: Token{
			AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt",
			Expiry: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Scope: "patient/*.read",
			IDToken: "id", Patient: "123", Encounter: "e1",
			Extra: map[string]any{"need_patient_banner": true, "fhirContext": []any{map[string]any{"reference": "Patient/123"}}, "n": 1.5},
		},
		Obtained:  time.Date(2026, 1, 2, 2, 4, 5, 6, time.UTC),
		Refreshes: 7,
	}
}

// TestSealedRecordCoversToken fails when record or Token gains a field that
// sealedRecord does not carry: an encrypted session would silently lose it.
func TestSealedRecordCoversToken(t *testing.T) {
	want := map[string]bool{}
	for _, typ := range []reflect.Type{reflect.TypeFor[Token](), reflect.TypeFor[record]()} {
		for f := range typ.Fields() {
			if f.Name != "Token" {
				want[f.Name] = true
			}
		}
	}
	got := map[string]bool{}
	for f := range reflect.TypeFor[sealedRecord]().Fields() {
		got[f.Name] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sealedRecord fields %v, want %v", got, want)
	}

	s, err := newSealer(fuzzKeys, "k")
	if err != nil {
		t.Fatal(err)
	}
	rec := fullRecord()
	blob, err := s.seal(rec)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.open(blob)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rec) {
		t.Errorf("round trip:\n got %#v\nwant %#v", back, rec)
	}
	if blob[0] != sealVersion || len(blob) < sealHeaderLen+28 {
		t.Errorf("blob header % x", blob[:sealHeaderLen])
	}
}

// TestOddSessionValues: whatever the session holds under the key (another
// type, an older format, a tampered value), Token answers
// ErrCorruptSession, removes it and never panics.
func TestOddSessionValues(t *testing.T) {
	values := []any{
		"a string", 42, 3.5, true, []byte("garbage"), []byte{}, []string{"a"},
		map[string]any{"access_token": "x"}, struct{}{}, Token{AccessToken: "x"}, &Token{AccessToken: "x"},
		(*record)(nil), &record{}, record{Token: Token{AccessToken: "x"}}, errors.New("x"),
	}
	for _, encrypted := range []bool{false, true} {
		sm := scs.New()
		cfg := Config{TokenURL: "https://ehr.example/token", ClientID: "c", Sessions: sm}
		if encrypted {
			cfg.EncryptionKeys = fuzzKeys
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			ctx, err := sm.Load(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			sm.Put(ctx, DefaultSessionKey, v)
			if _, err := r.Token(ctx); !errors.Is(err, ErrCorruptSession) {
				t.Errorf("encrypted=%v, %T: %v, want ErrCorruptSession", encrypted, v, err)
			}
			if sm.Exists(ctx, DefaultSessionKey) {
				t.Errorf("encrypted=%v, %T: not removed", encrypted, v)
			}
		}
	}
}

// FuzzDecodeSessionRecord feeds the session-record decoder arbitrary
// values: as a sealed blob, and as the plaintext of a validly sealed blob
// (what a holder of the key could store). It must never panic, and what it
// accepts must survive another round trip.
func FuzzDecodeSessionRecord(f *testing.F) {
	s, err := newSealer(fuzzKeys, DefaultSessionKey)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.seal(fullRecord())
	f.Add(good)
	f.Add(good[:sealHeaderLen])
	f.Add([]byte{})
	f.Add([]byte(`{"access_token":"a","expiry":"2026-01-02T03:04:05Z","extra":{"a":[1,{"b":null}]},"refreshes":-1}`))
	f.Add([]byte(`{"access_token":"","refresh_token":"r"}`))
	f.Add([]byte(`{"access_token":"a","expiry":"not a time"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if rec, err := s.open(data); err == nil && rec.Token.AccessToken == "" {
			t.Fatal("opened a record without an access token")
		}
		// The same bytes as the plaintext of a genuine sealed value.
		k := s.keys[0]
		header := []byte{sealVersion, k.id[0], k.id[1], k.id[2], k.id[3]}
		blob := k.aead.Seal(bytes.Clone(header), nil, data, s.aad(header))
		rec, err := s.open(blob)
		if err != nil {
			return
		}
		if rec.Token.AccessToken == "" {
			t.Fatal("decoded a record without an access token")
		}
		again, err := s.seal(rec)
		if err != nil {
			t.Fatalf("cannot seal a decoded record: %v", err)
		}
		back, err := s.open(again)
		if err != nil {
			t.Fatalf("cannot open a resealed record: %v", err)
		}
		if back.Token.AccessToken != rec.Token.AccessToken || back.Token.RefreshToken != rec.Token.RefreshToken ||
			!back.Token.Expiry.Equal(rec.Token.Expiry) || back.Refreshes != rec.Refreshes {
			t.Fatalf("round trip changed the record: %+v → %+v", rec, back)
		}
		// The Refresher's own entry point agrees.
		r := &Refresher{sealer: s}
		if _, ok := r.decodeSessionRecord(blob); !ok {
			t.Fatal("decodeSessionRecord rejects what open accepts")
		}
	})
}

// BenchmarkOpen is the cost an encrypted session adds to every request.
func BenchmarkOpen(b *testing.B) {
	s, err := newSealer(fuzzKeys, DefaultSessionKey)
	if err != nil {
		b.Fatal(err)
	}
	blob, _ := s.seal(fullRecord())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.open(blob); err != nil {
			b.Fatal(err)
		}
	}
}
