package core

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// tokenMask is a body with every occurrence of the access token replaced
// by as many "*" (which no bearer token contains), so that an upstream
// echoing the token (in an OperationOutcome, a debug page) cannot hand it
// to the page. The length stays the same. Of each read it holds back only
// a tail that begins the token (which the next read may complete), so an
// answer streams as it comes.
type tokenMask struct {
	src   io.ReadCloser
	tok   []byte
	at    int    // tok's anchor (see tokenAnchor)
	buf   []byte // buf[:n] read, not yet returned; buf[:ready] checked
	n     int
	ready int
	err   error
	// pooled is buf's entry in maskBuffers, returned by Close.
	pooled *[]byte
}

// newTokenMask masks token in src, a body of length size (-1: unknown),
// with a buffer that size needs, at most 32 KiB and the token.
func newTokenMask(src io.ReadCloser, token string, size int64) io.ReadCloser {
	m := &tokenMask{src: src, tok: []byte(token), at: tokenAnchor(token)}
	if size >= 0 && size < 32<<10 {
		m.buf = make([]byte, max(int(size), 512)+len(token))
		return m
	}
	if bp := maskBuffers.Get().(*[]byte); cap(*bp) >= 32<<10+len(token) {
		m.pooled, m.buf = bp, (*bp)[:cap(*bp)]
	} else {
		maskBuffers.Put(bp)
		m.buf = make([]byte, 32<<10+len(token))
	}
	return m
}

// maskBuffers are the buffers of bodies of unknown or large size: enough
// for 32 KiB and a token of up to 4 KiB.
var maskBuffers = sync.Pool{New: func() any { b := make([]byte, 36<<10); return &b }}

func (m *tokenMask) Read(p []byte) (int, error) {
	for m.ready == 0 && m.err == nil && len(p) > m.n+len(m.tok) {
		// The common case: read straight into p, behind the held tail.
		held := copy(p, m.buf[:m.n])
		k, err := m.src.Read(p[held:])
		n := held + k
		maskToken(p[:n], m.tok, m.at)
		part := 0
		if err == nil {
			part = partialToken(p[:n], m.tok)
		}
		m.n = copy(m.buf, p[n-part:n])
		m.err = err
		if n-part > 0 || err != nil {
			return n - part, nil
		}
	}
	for m.ready == 0 {
		if m.err != nil {
			if m.n > 0 { // the held-back tail: no occurrence can start there now
				m.ready = m.n
				break
			}
			return 0, m.err
		}
		k, err := m.src.Read(m.buf[m.n:])
		m.n += k
		m.err = err
		maskToken(m.buf[:m.n], m.tok, m.at)
		m.ready = m.n - partialToken(m.buf[:m.n], m.tok)
	}
	k := copy(p, m.buf[:m.ready])
	copy(m.buf, m.buf[k:m.n])
	m.n -= k
	m.ready -= k
	return k, nil
}

// maskToken replaces the occurrences of tok in b with "*". It looks for
// tok's anchor, tok[at], a byte rare in FHIR answers (see tokenAnchor):
// looking for the first byte, as bytes.Index does, is slow when it is a
// common one, the "e" of every JWT's "eyJ". Where the anchor turns out
// common too, it goes on with bytes.Index.
func maskToken(b, tok []byte, at int) {
	fails := 0
	for i := at; i < len(b); {
		j := bytes.IndexByte(b[i:], tok[at])
		if j < 0 {
			return
		}
		start := i + j - at // where tok would begin
		if start+len(tok) <= len(b) && bytes.Equal(b[start:start+len(tok)], tok) {
			for k := range len(tok) {
				b[start+k] = '*'
			}
			i = start + len(tok) + at
			continue
		}
		i += j + 1
		if fails++; fails > 4+i>>4 {
			maskTokenIndex(b[i-at:], tok)
			return
		}
	}
}

// maskTokenIndex is maskToken with bytes.Index.
func maskTokenIndex(b, tok []byte) {
	for {
		i := bytes.Index(b, tok)
		if i < 0 {
			return
		}
		for j := range len(tok) {
			b[i+j] = '*'
		}
		b = b[i+len(tok):]
	}
}

// tokenAnchor returns the index of the byte of token least common in a
// FHIR JSON answer, by a rough ranking (an upper-case letter, "_", "~",
// "+" or "=" before a digit or "-", before a lower-case letter).
func tokenAnchor(token string) int {
	at := 0
	for i := range len(token) {
		if tokenByteRank[token[i]] < tokenByteRank[token[at]] {
			at = i
		}
	}
	return at
}

// tokenByteRank ranks bytes by how common they are in FHIR JSON: 0 (rare)
// to 3.
var tokenByteRank = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z':
			t[c] = 3
			if strings.IndexByte("jkqvxz", byte(c)) >= 0 {
				t[c] = 2
			}
		case c >= '0' && c <= '9', c == '-', c == '.', c == '/':
			t[c] = 2
		case c >= 'A' && c <= 'Z':
			t[c] = 0
			if strings.IndexByte("ABCDEMOPST", byte(c)) >= 0 { // FHIR's type names
				t[c] = 1
			}
		case c == '_', c == '~', c == '+', c == '=':
			t[c] = 0
		default:
			t[c] = 1
		}
	}
	return
}()

// partialToken returns the length of the longest tail of b that is a
// proper prefix of tok.
func partialToken(b, tok []byte) int {
	for i := max(0, len(b)-len(tok)+1); i < len(b); i++ {
		j := bytes.IndexByte(b[i:], tok[0])
		if j < 0 {
			return 0
		}
		i += j
		if bytes.HasPrefix(tok, b[i:]) {
			return len(b) - i
		}
	}
	return 0
}

func (m *tokenMask) Close() error {
	if m.pooled != nil {
		maskBuffers.Put(m.pooled)
		m.pooled, m.buf, m.n, m.ready = nil, nil, 0, 0
		m.err = io.ErrClosedPipe
	}
	return m.src.Close()
}
