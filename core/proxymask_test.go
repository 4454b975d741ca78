package core

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// chunked reads data in pieces of the sizes in cuts, in turn.
type chunked struct {
	data []byte
	cuts []byte
	i    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
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
// browser gets is the body with each occurrence of the token masked, of
// the same length.
func FuzzTokenMask(f *testing.F) {
	f.Add([]byte(`{"issue":[{"diagnostics":"token abc.def-ghi is odd"}]}`), []byte{3, 200, 1}, "abc.def-ghi")
	f.Add([]byte("aaaaaaa"), []byte{0}, "aa")
	f.Add([]byte("xabcabcab"), []byte{1, 2}, "abcab")
	f.Fuzz(func(t *testing.T, data, cuts []byte, token string) {
		if token == "" || bytes.Contains([]byte(token), []byte("*")) {
			return
		}
		m := newTokenMask(&chunked{data: bytes.Clone(data), cuts: cuts}, token, -1)
		got, err := io.ReadAll(m)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.ReplaceAll(data, []byte(token), bytes.Repeat([]byte("*"), len(token)))
		if !bytes.Equal(got, want) {
			t.Fatalf("body %q, token %q, cuts %v: got %q, want %q", data, token, cuts, got, want)
		}
		m.Close()
	})
}

// TestMaskTokenAnchor: the token is found by its rarest byte wherever it
// is (at the start, at the end, twice in a row, overlapping itself), and
// where that byte is common, as the "J" of a JWT in a body full of them,
// the search that takes over finds every occurrence too.
func TestMaskTokenAnchor(t *testing.T) {
	jwt := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2ln"
	for _, c := range []struct{ body, token string }{
		{jwt + ` is the token ` + jwt, jwt},
		{strings.Repeat(`{"J":"eyJ"},`, 200) + jwt + strings.Repeat(`"J",`, 300) + jwt + jwt, jwt},
		{strings.Repeat("aXa", 50) + "aXaXa", "aXa"},
		{strings.Repeat("Q", 100) + "QQQQ", "QQ"},
		{"abcdefQ", "efQ"},
		{"Qabc", "Qab"},
		{"no token here", jwt},
		{"", "x"},
	} {
		b := []byte(c.body)
		maskToken(b, []byte(c.token), tokenAnchor(c.token))
		want := strings.ReplaceAll(c.body, c.token, strings.Repeat("*", len(c.token)))
		if string(b) != want {
			t.Errorf("token %q in %.60q…: got %.80q…, want %.80q…", c.token, c.body, b, want)
		}
	}
	if at := tokenAnchor(jwt); jwt[at] != 'J' {
		t.Errorf("the anchor of %q is %q, want an upper-case letter rarer than its first", jwt, jwt[at])
	}
}
