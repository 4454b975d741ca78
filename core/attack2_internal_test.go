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

// BenchmarkRewriteBundleLinksHostile: the Bundle rewriter's cost on
// bodies built for its skip's worst case (nesting just under
// maxJSONDepth, over and over; escapes everywhere; a key-heavy entry)
// against a typical Bundle; and a nesting past maxJSONDepth ends it.
func BenchmarkRewriteBundleLinksHostile(b *testing.B) {
	const head = `{"resourceType":"Bundle","type":"searchset","entry":[`
	fill := func(unit string) []byte {
		body := []byte(head)
		for len(body) < 4<<20 {
			body = append(body, unit...)
			body = append(body, ',')
		}
		return append(body[:len(body)-1], "]}"...)
	}
	deep := strings.Repeat("[", maxJSONDepth-8) + strings.Repeat("]", maxJSONDepth-8)
	for _, v := range []struct {
		name string
		body []byte
	}{
		{"typical", fill(`{"fullUrl":"https://fhir.example/r4/Observation/1","resource":{"resourceType":"Observation","id":"1","status":"final","subject":{"reference":"Patient/123"},"valueQuantity":{"value":72}}}`)},
		{"nested", fill(`{"resource":{"x":` + deep + `}}`)},
		{"nested-entry", fill(`{"fullUrl":` + deep[:3000] + deep[len(deep)-3000:] + `}`)},
		{"escapes", fill(`{"resource":{"x":"` + strings.Repeat(`\"\\`, 4000) + `"}}`)},
		{"keys", fill(`{"response":{` + strings.Repeat(`"locatio":1,`, 4000) + `"location":"https://fhir.example/r4/x"}}`)},
	} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(v.body)))
			for b.Loop() {
				r := rewriteBundleLinks(io.NopCloser(bytes.NewReader(v.body)), func(s string) string { return s })
				io.Copy(io.Discard, r)
				r.Close()
			}
		})
	}
}

// TestAttackBundleNestingPastTheBound: a Bundle nested deeper than
// maxJSONDepth (4 MiB of "[") ends in an error, having held no more than
// the bound's nesting, instead of growing with the body.
func TestAttackBundleNestingPastTheBound(t *testing.T) {
	for _, open := range []string{"[", `{"a":`} {
		body := `{"resourceType":"Bundle","entry":` + strings.Repeat(open, (4<<20)/len(open))
		r := rewriteBundleLinks(io.NopCloser(strings.NewReader(body)), func(s string) string { return s })
		n, err := io.Copy(io.Discard, r)
		rw := r.(*bundleRewriter)
		if err == nil || len(rw.kinds) > maxJSONDepth+1 { // +1: the Bundle itself
			t.Errorf("%q nested 4 MiB deep: %d bytes out, err %v, %d containers held", open, n, err, len(rw.kinds))
		}
		r.Close()
	}
}
