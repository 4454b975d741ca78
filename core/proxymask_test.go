package core

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"testing"
)

// chunked reads data in pieces of the sizes in cuts, in turn.
type chunked struct {
	data []byte
	cuts []byte
	i    int
	end  error // at the end: io.EOF when nil
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		if c.end != nil {
			return 0, c.end
		}
		return 0, io.EOF
	}
	n := 1
	if len(c.cuts) > 0 {
		n = int(c.cuts[c.i%len(c.cuts)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunked) Close() error { return nil }

// FuzzTokenMask: however the upstream's body is cut into reads, what the
// browser gets is the body with the bytes of every form of the token (as
// tokenFormEnds finds them, from the promise in FHIRProxy's doc) replaced
// by "*", every other byte as it was, the length the same; and no form
// is left. how splices a form of the token into the body too: its first
// byte picks the form and where it goes, the next ones how each
// character is written.
func FuzzTokenMask(f *testing.F) {
	f.Add([]byte(`{"issue":[{"diagnostics":"token abc.def-ghi is odd"}]}`), []byte{3, 200, 1}, "abc.def-ghi", []byte{0})
	f.Add([]byte("aaaaaaa"), []byte{0}, "aa", []byte{})
	f.Add([]byte("xabcabcab"), []byte{1, 2}, "abcab", []byte{1, 1, 2, 3, 4, 5, 6})
	f.Add([]byte(`{"data":""}`), []byte{7}, "mF_9.B5f-4.1JqM/Zx+8", []byte{10, 0})
	f.Add([]byte(`{"url":"https://x/?t="}`), []byte{2, 9}, "a/b+c=d e%f\\g\"h", []byte{20, 1, 2, 3, 4, 5, 6, 7, 0})
	f.Add([]byte("%2525%25"), []byte{0}, "%25", []byte{})
	f.Fuzz(func(t *testing.T, data, cuts []byte, token string, how []byte) {
		if token == "" || strings.Contains(token, "*") || len(data) > 512 || len(token) > 48 {
			return
		}
		bodies := [][]byte{data}
		if len(how) > 0 {
			form := writeTokenForm(token, how)
			at := int(how[0]) * len(data) / 256
			bodies = append(bodies, slices.Concat(data[:at], form, data[at:]))
		}
		forms := newTokenForms(token)
		for _, body := range bodies {
			m := newTokenMask(&chunked{data: bytes.Clone(body), cuts: cuts}, forms, -1)
			got, err := io.ReadAll(m)
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
			want := bytes.Clone(body)
			for s, e := range tokenFormEnds(body, token) {
				for i := s; i < e; i++ {
					want[i] = '*'
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("body %q, token %q, cuts %v: got %q, want %q", body, token, cuts, got, want)
			}
			for s, e := range tokenFormEnds(got, token) {
				t.Fatalf("body %q, token %q: a form is left at %d:%d of %q", body, token, s, e, got)
			}
			if forms.in(string(body)) != !bytes.Equal(body, want) {
				t.Fatalf("body %q, token %q: in is %v", body, token, forms.in(string(body)))
			}
			// A body that breaks off (the connection drops) gives what the
			// whole one would, up to where a form may have been under way
			// at the break: none of that.
			m = newTokenMask(&chunked{data: bytes.Clone(body), cuts: cuts, end: io.ErrUnexpectedEOF}, forms, -1)
			cut, err := io.ReadAll(m)
			m.Close()
			if err != io.ErrUnexpectedEOF || !bytes.HasPrefix(want, cut) {
				t.Fatalf("body %q, token %q, broken off: got %q, %v; want a prefix of %q", body, token, cut, err, want)
			}
			for k := len(token) - 1; k > 0; k-- {
				if bytes.HasSuffix(body, []byte(token[:k])) {
					if len(cut) > len(body)-k {
						t.Fatalf("body %q, token %q, broken off: got %q, with the token's start %q", body, token, cut, token[:k])
					}
					break
				}
			}
		}
	})
}

// writeTokenForm writes token as how says: how[0]%4 == 3, its base64 (of
// a prefix of how[0]/4%3 bytes and the token; the alphabet and padding
// from how[0]/12), else each character in turn in the way the next byte
// of how picks (as itself, %XX, \u00XX, a short escape, with hex digits
// in the case it picks too).
func writeTokenForm(token string, how []byte) []byte {
	if how[0]%4 == 3 {
		encs := []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}
		return []byte(encs[int(how[0])/12%4].EncodeToString([]byte("Bearer "[:how[0]/4%3] + token)))
	}
	var b []byte
	for i := range len(token) {
		c, w := token[i], byte(0)
		if len(how) > 1 {
			w = how[1+i%(len(how)-1)]
		}
		hex := func(d byte) byte {
			h := "0123456789abcdef"[d]
			if w&8 != 0 && h >= 'a' {
				h -= 0x20
			}
			if w&16 != 0 {
				w ^= 8 // the next digit in the other case
			}
			return h
		}
		switch w % 5 {
		case 1:
			b = append(b, '%', hex(c>>4), hex(c&15))
		case 2:
			if c < 0x80 {
				b = append(b, '\\', 'u', '0', '0', hex(c>>4), hex(c&15))
				continue
			}
			b = append(b, c)
		case 3:
			if e, ok := map[byte]byte{'"': '"', '\\': '\\', '/': '/', '\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}[c]; ok {
				b = append(b, '\\', e)
				continue
			}
			b = append(b, c)
		case 4:
			if c == ' ' {
				b = append(b, '+')
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return b
}

// tokenFormEnds yields, for each offset of body where a form of the token
// begins, the end of the longest one there. It is the promise, written
// plainly: a form is the token or, for a token of 8 bytes or more, the
// characters of one of its base64 encodings (standard or URL alphabet,
// after 0, 1 or 2 other bytes) that no byte around it changes; with each
// character written as itself, as %XX or (ASCII) \u00XX with hex digits
// in either case, as its JSON short escape, or a space as "+".
func tokenFormEnds(body []byte, token string) iter.Seq2[int, int] {
	texts := []string{token}
	if len(token) >= 8 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for pre := range 3 {
				// The characters that are the same whatever the bytes
				// around the token are.
				lo := enc.EncodeToString([]byte(strings.Repeat("\x00", pre) + token + "\x00\x00"))
				hi := enc.EncodeToString([]byte(strings.Repeat("\xff", pre) + token + "\xff\xff"))
				var run []byte
				for i := range len(lo) {
					if lo[i] == hi[i] {
						run = append(run, lo[i])
					} else if len(run) > 0 {
						break
					}
				}
				texts = append(texts, string(run))
			}
		}
	}
	ways := func(c byte) []string {
		w := []string{string([]byte{c})} // the byte, not the UTF-8 of rune c
		for _, h := range caseVariants(fmt.Sprintf("%02x", c)) {
			w = append(w, "%"+h)
			if c < 0x80 {
				w = append(w, `\u00`+h)
			}
		}
		if e, ok := map[byte]string{'"': `\"`, '\\': `\\`, '/': `\/`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`, ' ': "+"}[c]; ok {
			w = append(w, e)
		}
		return w
	}
	waysOf := make([][][][]byte, len(texts))
	for t, text := range texts {
		for i := range len(text) {
			var ws [][]byte
			for _, w := range ways(text[i]) {
				ws = append(ws, []byte(w))
			}
			waysOf[t] = append(waysOf[t], ws)
		}
	}
	return func(yield func(int, int) bool) {
		for s := range body {
			end := -1
			for t := range texts {
				at := []int{s} // where the characters so far can end
				for _, ws := range waysOf[t] {
					var next []int
					for _, x := range at {
						for _, w := range ws {
							if bytes.HasPrefix(body[x:], w) && !slices.Contains(next, x+len(w)) {
								next = append(next, x+len(w))
							}
						}
					}
					if at = next; len(at) == 0 {
						break
					}
				}
				for _, x := range at {
					end = max(end, x)
				}
			}
			if end >= 0 && !yield(s, end) {
				return
			}
		}
	}
}

// caseVariants returns s with its letters in each combination of cases.
func caseVariants(s string) []string {
	out := []string{""}
	for i := range len(s) {
		var next []string
		for _, o := range out {
			next = append(next, o+s[i:i+1])
			if s[i] >= 'a' && s[i] <= 'f' {
				next = append(next, o+strings.ToUpper(s[i:i+1]))
			}
		}
		out = next
	}
	return out
}

// BenchmarkTokenMask is the mask alone, with a token of the length
// smarttest's are, on FHIR Bundles: of Observations (as
// BenchmarkProxyBundle's), and with narratives, escaped URLs and base64
// attachments, where most bytes could be part of a base64 form.
func BenchmarkTokenMask(b *testing.B) {
	forms := newTokenForms("mF_9B5f-4_1JqMZx8Lk0pQ2wRr7TvYHd3abcdefgHIJ")
	for _, v := range []struct{ name, entry string }{
		{"observations", `{"fullUrl":"https://fhir.example/r4/Observation/%[1]d","resource":{"resourceType":"Observation","id":"%[1]d","status":"final",` +
			`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/123"},` +
			`"effectiveDateTime":"2026-12-02T10:00:00Z","valueQuantity":{"value":%[2]d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"}},"search":{"mode":"match"}},`},
		{"attachments", `{"fullUrl":"https://fhir.example/r4/Observation/%[1]d","resource":{"resourceType":"Observation","id":"%[1]d",` +
			`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Glucose %[2]d mmol/L</div>"},` +
			`"subject":{"reference":"Patient/123?_x=a%%2Fb"},"valueAttachment":{"data":"%[3]s"}}},`},
	} {
		var body []byte
		for i := 0; len(body) < 4<<20; i++ {
			data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i), byte(i * 7), byte(i * 13)}, 40))
			body = fmt.Appendf(body, v.entry, i, 60+i%40, data)
		}
		b.Run("body="+v.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				m := newTokenMask(io.NopCloser(bytes.NewReader(body)), forms, -1)
				io.Copy(io.Discard, m)
				m.Close()
			}
		})
	}
}
