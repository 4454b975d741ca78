package core

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

// BenchmarkTokenMaskHostile: the mask's cost on bodies built for its
// worst case, against a typical body, for a random token of the length
// some servers issue (a 1 KiB JWT) and for a token that repeats itself.
func BenchmarkTokenMaskHostile(b *testing.B) {
	raw := make([]byte, 768)
	rand.Read(raw)
	random := base64.RawURLEncoding.EncodeToString(raw) // 1024 characters
	repeated := strings.Repeat("a", 64)
	noise := make([]byte, 3<<20) // a Binary's data: base64 of random bytes
	rand.Read(noise)
	pctAll := func(s string) string {
		var out strings.Builder
		for i := range len(s) {
			out.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[s[i]>>4])) + string("0123456789abcdef"[s[i]&15]))
		}
		return out.String()
	}
	fill := func(unit string) []byte {
		return bytes.Repeat([]byte(unit), (4<<20)/len(unit)+1)[:4<<20]
	}
	// A token that repeats itself costs the mask a state per repeat it
	// may be in (push): these bodies are 64 KiB, not 4 MiB.
	fillSmall := func(unit string) []byte { return fill(unit)[:64<<10] }
	for _, v := range []struct {
		name, token string
		body        []byte
	}{
		{"token=random/body=typical", random, fill(`{"resourceType":"Observation","id":"123","status":"final","valueQuantity":{"value":72}},`)},
		{"token=random/body=prefixes", random, fill(random[:len(random)-1] + "!")},
		{"token=random/body=pct-prefixes", random, fill(pctAll(random[:200]) + "!")},
		{"token=random/body=u-prefixes", random, fill(strings.ReplaceAll(pctAll(random[:200]), "%", `\u00`) + "!")},
		{"token=random/body=binary", random, fill(base64.StdEncoding.EncodeToString(noise))},
		{"token=random/body=token-base64", random, fill(base64.StdEncoding.EncodeToString([]byte(random)))},
		{"token=random/body=jwt-header-pct", random, fill(pctAll(random[:36]) + "!")},
		{"token=aaaa/body=a", repeated, fillSmall("a")},
		{"token=aaaa/body=%61", repeated, fillSmall("%61")},
		{"token=aaaa/body=mixed", repeated, fillSmall(`a%61\u0061A%41`)},
	} {
		forms := newTokenForms(v.token)
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(v.body)))
			for b.Loop() {
				m := newTokenMask(io.NopCloser(bytes.NewReader(v.body)), forms, -1)
				io.Copy(io.Discard, m)
				m.Close()
			}
		})
	}
}
