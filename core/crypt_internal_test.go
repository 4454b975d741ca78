package core

import (
	"bytes"
	"context"
	"encoding/base64"
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

	s, err := newSealer(fuzzKeys, nil, "k")
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

// sameRecord reports whether a and b hold the same token, as far as a
// round trip through the session can tell (times compare as instants).
func sameRecord(a, b *record) bool {
	x, y := a.Token, b.Token
	return x.AccessToken == y.AccessToken && x.TokenType == y.TokenType && x.RefreshToken == y.RefreshToken &&
		x.Expiry.Equal(y.Expiry) && x.Scope == y.Scope && x.IDToken == y.IDToken && x.Patient == y.Patient &&
		x.Encounter == y.Encounter && reflect.DeepEqual(x.Extra, y.Extra) &&
		a.Obtained.Equal(b.Obtained) && a.Refreshes == b.Refreshes
}

// valueRefresher is a Refresher with only what decoding session values
// needs.
func valueRefresher(t testing.TB, enc, dec [][]byte) *Refresher {
	s, err := newSealer(enc, dec, DefaultSessionKey)
	if err != nil {
		t.Fatal(err)
	}
	return &Refresher{sealer: s, values: newValueCache()}
}

// FuzzDecodeSessionRecord feeds the session-value decoder arbitrary input:
// as a session value of the text forms (for a Refresher with and one
// without EncryptionKeys), as the JSON text of a plain value, as the
// plaintext of a validly sealed value (what a holder of the key could
// store), and as a sealed []byte of earlier versions. It must never panic,
// never accept a record without an access token, and what it accepts must
// survive another round trip unchanged.
func FuzzDecodeSessionRecord(f *testing.F) {
	sealing := valueRefresher(f, fuzzKeys, nil)
	plain := valueRefresher(f, nil, nil)
	s := sealing.sealer
	good, _ := s.seal(fullRecord())
	goodText, _ := sealing.sessionValue(fullRecord())
	plainText, _ := plain.sessionValue(fullRecord())
	for _, seed := range [][]byte{
		good, good[:sealHeaderLen], {}, []byte(goodText), []byte(plainText),
		[]byte(plainText[len(plainPrefix):]), []byte(goodText[:len(sealedPrefix)+3]),
		[]byte(sealedPrefix + "!!"), []byte("smartrefresh.record.v9:{}"), []byte(plainPrefix),
		[]byte(`{"access_token":"a","expiry":"2026-01-02T03:04:05Z","extra":{"a":[1,{"b":null}]},"refreshes":-1}`),
		[]byte(`{"access_token":"","refresh_token":"r"}`),
		[]byte(`{"access_token":"a","expiry":"not a time"}`),
		[]byte(`[]`),
	} {
		f.Add(seed)
	}
	// roundTrip checks that what r accepted is stored and read back as it
	// was.
	roundTrip := func(t *testing.T, r *Refresher, rec *record) {
		if rec.Token.AccessToken == "" {
			t.Fatal("accepted a record without an access token")
		}
		text, err := r.sessionValue(rec)
		if err != nil {
			t.Fatalf("cannot store a decoded record: %v", err)
		}
		back, err := r.decodeSessionRecord(text)
		if err != nil {
			t.Fatalf("cannot read a stored record back: %v", err)
		}
		if !sameRecord(back, rec) {
			t.Fatalf("round trip changed the record: %+v → %+v", rec, back)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A session value of the text forms, read twice (the second
		// time from the cache) by Refreshers with and without keys.
		for _, r := range []*Refresher{sealing, plain} {
			rec, err := r.decodeSessionRecord(string(data))
			again, err2 := r.decodeSessionRecord(string(data))
			if (err == nil) != (err2 == nil) || err == nil && !sameRecord(rec, again) {
				t.Fatalf("a second read differs: %v, %v", err, err2)
			}
			if err == nil {
				roundTrip(t, r, rec)
			}
		}
		// The JSON text of a plain value.
		if rec, err := plain.decodeSessionRecord(plainPrefix + string(data)); err == nil {
			roundTrip(t, plain, rec)
		}
		// A sealed []byte, as versions before the text forms stored.
		if rec, err := sealing.decodeSessionRecord(data); err == nil && rec.Token.AccessToken == "" {
			t.Fatal("opened a record without an access token")
		}
		// The same bytes as the plaintext of a genuine sealed value, as
		// a []byte and as text.
		k := s.keys[0]
		header := []byte{sealVersion, k.id[0], k.id[1], k.id[2], k.id[3]}
		blob := k.aead.Seal(bytes.Clone(header), nil, data, s.aad(header))
		rec, err := s.open(blob)
		fromText, errText := sealing.decodeSessionRecord(sealedPrefix + base64.RawURLEncoding.EncodeToString(blob))
		if (err == nil) != (errText == nil) || err == nil && !sameRecord(rec, fromText) {
			t.Fatalf("the text form disagrees with open: %v, %v", err, errText)
		}
		if err != nil {
			return
		}
		roundTrip(t, sealing, rec)
		if _, err := sealing.decodeSessionRecord(blob); err != nil {
			t.Fatal("decodeSessionRecord rejects what open accepts")
		}
	})
}

// BenchmarkOpen is the cost an encrypted session adds to every request.
func BenchmarkOpen(b *testing.B) {
	s, err := newSealer(fuzzKeys, nil, DefaultSessionKey)
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
