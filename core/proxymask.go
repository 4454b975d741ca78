package core

import (
	"encoding/base64"
	"io"
	"sync"
)

// tokenMask is a body with every written form of the access token (see
// tokenForms) replaced by as many "*" (which no bearer token contains),
// so that an upstream echoing the token (in an OperationOutcome, a Bundle
// link, a debug page), verbatim or encoded, cannot hand it to the page.
// The length stays the same. It reads the body once, byte by byte through
// a matcher whose state carries over from one read to the next, and holds
// back only the bytes a form may still be under way in (at most the
// longest form), so an answer streams as it comes. Those bytes go out at
// the body's end (io.EOF), and nowhere when it breaks off (any other
// error): a page streaming a cut answer must not get a token's start.
type tokenMask struct {
	src   io.ReadCloser
	forms *tokenForms
	buf   []byte // buf[:n] read, not yet returned; buf[:ready] final
	n     int
	ready int
	base  int64 // the body offset of buf[0]
	act   []maskState
	next  []maskState
	arr   [2][8]maskState // act's and next's first arrays
	// index finds a state in next when there are many (a token that
	// repeats itself, such as "aaaa", in a body that does too).
	index map[maskKey]int
	err   error
	// pooled is buf's entry in maskBuffers, returned by Close.
	pooled *[]byte
}

// newTokenMask masks the forms of a token in src, a body of length size
// (-1: unknown), with a buffer that size needs, at most 32 KiB and the
// longest form.
func newTokenMask(src io.ReadCloser, forms *tokenForms, size int64) io.ReadCloser {
	m := &tokenMask{src: src, forms: forms}
	m.act, m.next = m.arr[0][:0], m.arr[1][:0]
	need := 32<<10 + m.forms.span
	if size >= 0 && size < 32<<10 {
		m.buf = make([]byte, max(int(size), 512)+m.forms.span)
		return m
	}
	bp := maskBuffers.Get().(*[]byte)
	if cap(*bp) < need {
		*bp = make([]byte, need)
	}
	m.pooled, m.buf = bp, (*bp)[:cap(*bp)]
	return m
}

// maskBuffers are the buffers of bodies of unknown or large size: enough
// for 32 KiB and the longest form of a token of up to 500 bytes; grown
// for a longer one.
var maskBuffers = sync.Pool{New: func() any { b := make([]byte, 36<<10); return &b }}

func (m *tokenMask) Read(p []byte) (int, error) {
	for m.ready == 0 && m.err == nil && len(p) > m.n+m.forms.span {
		// The common case: read straight into p, behind the held tail.
		held := copy(p, m.buf[:m.n])
		k, err := m.src.Read(p[held:])
		n := held + k
		hold := m.scan(p[:n], held)
		if err != nil {
			if err != io.EOF {
				// A broken answer: its end is not the body's, and the
				// bytes a form may have been under way in go nowhere.
				n -= hold
			}
			hold = 0 // no form can end after the body's end
			m.act = m.act[:0]
		}
		m.n = copy(m.buf, p[n-hold:n])
		m.base += int64(n - hold)
		m.err = err
		if n-hold > 0 || err != nil {
			return n - hold, nil
		}
	}
	for m.ready == 0 {
		if m.err != nil {
			if m.n > 0 && m.err == io.EOF { // the held-back tail: no form can end there now
				m.ready = m.n
				m.act = m.act[:0]
				break
			}
			m.n = 0 // of a broken answer, it goes nowhere
			return 0, m.err
		}
		k, err := m.src.Read(m.buf[m.n:])
		m.err = err
		m.ready = m.n + k - m.scan(m.buf[:m.n+k], m.n)
		m.n += k
	}
	k := copy(p, m.buf[:m.ready])
	copy(m.buf, m.buf[k:m.n])
	m.n -= k
	m.ready -= k
	m.base += int64(k)
	return k, nil
}

func (m *tokenMask) Close() error {
	if m.pooled != nil {
		maskBuffers.Put(m.pooled)
		m.pooled, m.buf, m.n, m.ready = nil, nil, 0, 0
		m.err = io.ErrClosedPipe
	}
	return m.src.Close()
}

// scan feeds w[from:] to the matcher (w[0] is at body offset m.base, and
// w[:from] was fed before), masks in w every form that ends there, and
// returns how many bytes at w's end a form may still be under way in.
func (m *tokenMask) scan(w []byte, from int) (hold int) {
	walk := false
	for i := from; i < len(w); i++ {
		if len(m.act) == 0 {
			if i = m.forms.skip(w, i, walk); i == len(w) {
				break
			}
		}
		m.step(w, i)
		walk = true // w[i] began a form: i+1 is in the same run
	}
	if len(m.act) == 0 {
		return 0
	}
	start := m.act[0].start
	for _, s := range m.act[1:] {
		start = min(start, s.start)
	}
	return int(m.base + int64(len(w)) - start)
}

// maskState is a form under way: pattern p's characters before i are
// matched, and k bytes of the way alt a writes character i (a < 0: none
// yet), from body offset start on.
type maskState struct {
	p, a, k int16
	i       int32
	start   int64
}

// step feeds w[i] to the matcher.
func (m *tokenMask) step(w []byte, i int) {
	f, b, off := m.forms, w[i], m.base+int64(i)
	m.next = m.next[:0]
	if m.index != nil {
		clear(m.index)
	}
	if f.class[b] == begins {
		for p := range f.patterns {
			m.advance(w, maskState{p: int16(p), a: -1, start: off}, b, off)
		}
	}
	for _, s := range m.act {
		m.advance(w, s, b, off)
	}
	m.act, m.next = m.next, m.act
}

// advance moves s on by byte b at body offset off into m.next, masking a
// form that ends there.
func (m *tokenMask) advance(w []byte, s maskState, b byte, off int64) {
	pat := m.forms.patterns[s.p]
	alts := maskAltsOf[pat[s.i]]
	if s.a >= 0 {
		alts = alts[s.a : s.a+1]
	}
	for j, alt := range alts {
		if !alt.matches(int(s.k), b) {
			continue
		}
		t := maskState{p: s.p, a: s.a, k: s.k + 1, i: s.i, start: s.start}
		if t.a < 0 {
			t.a = int16(j)
		}
		if int(t.k) == len(alt.s) { // character i written
			t.i, t.a, t.k = t.i+1, -1, 0
			if int(t.i) == len(pat) {
				for x := s.start - m.base; x <= off-m.base; x++ {
					w[x] = '*'
				}
				continue
			}
		}
		m.push(t)
	}
}

// push adds s to m.next, once: of two with the same future, the one that
// began earlier masks more.
func (m *tokenMask) push(s maskState) {
	if len(m.next) < 16 {
		for j := range m.next {
			if t := &m.next[j]; t.p == s.p && t.i == s.i && t.a == s.a && t.k == s.k {
				t.start = min(t.start, s.start)
				return
			}
		}
		m.next = append(m.next, s)
		return
	}
	if m.index == nil {
		m.index = make(map[maskKey]int)
	}
	if len(m.index) == 0 {
		for j, t := range m.next {
			m.index[t.key()] = j
		}
	}
	if j, ok := m.index[s.key()]; ok {
		m.next[j].start = min(m.next[j].start, s.start)
		return
	}
	m.index[s.key()] = len(m.next)
	m.next = append(m.next, s)
}

// maskKey is a maskState less its start: what its future depends on.
type maskKey struct {
	p, a, k int16
	i       int32
}

func (s maskState) key() maskKey { return maskKey{s.p, s.a, s.k, s.i} }

// tokenForms are the patterns the mask finds for one token: the token and
// its base64 runs (see newTokenForms), each character written in any of
// the ways maskAlts lists.
type tokenForms struct {
	patterns []string
	class    [256]uint8 // of each byte: 0, held (a form can hold it) or begins (a form can begin with it too)
	firstIdx [256]uint8 // of a byte that begins: its set in second
	second   [][4]uint64
	span     int // the longest form's length
	least    int // the shortest form's length
}

// skip returns the first offset from i on where a form of f may begin in
// w (len(w): none), with no form under way. Every byte of a form is held,
// and a form is at least f.least bytes long; so a byte that is not,
// least-1 bytes on, rules out least offsets at once, and only runs of
// held bytes that long are walked, byte by byte. walk: i is in such a run.
func (f *tokenForms) skip(w []byte, i int, walk bool) int {
	for i < len(w) {
		if !walk {
			x := i + f.least - 1
			if x >= len(w) { // the chunk's end: too near to look ahead
				walk = true
				continue
			}
			if f.class[w[x]] == 0 {
				i = x + 1
				continue
			}
			for x > i && f.class[w[x-1]] != 0 {
				x--
			}
			i, walk = x, true // a form beginning before the run's end lies in it
		}
	run:
		for ; i < len(w); i++ {
			switch f.class[w[i]] {
			case held:
				continue
			case begins:
				if i+1 == len(w) || f.pair(w[i], w[i+1]) {
					return i
				}
				continue
			}
			break run // not in a form: the run ends
		}
		i, walk = i+1, false
	}
	return len(w)
}

// minBase64Token is the shortest token whose base64 runs are masked: of a
// shorter one, they are short enough to occur by chance.
const minBase64Token = 8

// newTokenForms returns the forms of token: the token itself and, for a
// token of minBase64Token bytes or more, the characters of its base64
// encodings (standard and URL alphabets, at each of the three alignments
// it can have inside a longer text such as "Bearer <token>") that hold
// its bits only, which padding does not change.
func newTokenForms(token string) *tokenForms {
	texts := make([]string, 1, 7)
	texts[0] = token
	if len(token) >= minBase64Token {
		buf := append([]byte{0, 0}, token...)
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for a := range 3 {
				s := enc.EncodeToString(buf[2-a:])
				// Character j holds bits 6j to 6j+6 of s's bytes; the
				// token's are bits 8a to 8(a+len(token)).
				run := s[(8*a+5)/6 : 8*(a+len(token))/6]
				if !contains(texts, run) {
					texts = append(texts, run)
				}
			}
		}
	}
	f := &tokenForms{patterns: texts, second: make([][4]uint64, 1, 8), least: len(token)}
	for _, text := range texts {
		f.span = max(f.span, 6*len(text))
		f.least = min(f.least, len(text))
		for i := range len(text) {
			for _, a := range maskAltsOf[text[i]] {
				for k := range len(a.s) {
					f.class[a.s[k]] = max(f.class[a.s[k]], held)
					if a.fold&(1<<k) != 0 {
						f.class[a.s[k]&^0x20] = max(f.class[a.s[k]&^0x20], held)
					}
				}
			}
		}
		for _, a := range maskAltsOf[text[0]] {
			f.class[a.s[0]] = begins
			if len(a.s) > 1 {
				f.allow(a.s[0], a.s[1], a.fold&2 != 0)
				continue
			}
			if len(text) == 1 {
				for c := range 256 {
					f.allow(a.s[0], byte(c), false)
				}
				continue
			}
			for _, b := range maskAltsOf[text[1]] {
				f.allow(a.s[0], b.s[0], false)
			}
		}
	}
	return f
}

// The classes of bytes in tokenForms.class.
const (
	held = 1 + iota
	begins
)

func contains(list []string, s string) bool {
	for _, t := range list {
		if t == s {
			return true
		}
	}
	return false
}

// allow lets c follow b at a form's start (either case when fold).
func (f *tokenForms) allow(b, c byte, fold bool) {
	if f.firstIdx[b] == 0 {
		f.firstIdx[b] = uint8(len(f.second))
		f.second = append(f.second, [4]uint64{})
	}
	set := &f.second[f.firstIdx[b]]
	set[c>>6] |= 1 << (c & 63)
	if fold {
		c &^= 0x20
		set[c>>6] |= 1 << (c & 63)
	}
}

// pair reports whether c may follow b at a form's start.
func (f *tokenForms) pair(b, c byte) bool {
	return f.second[f.firstIdx[b]][c>>6]&(1<<(c&63)) != 0
}

// maskAlt is one way a character is written: the bytes s, with the hex
// digit letters at the positions set in fold in either case.
type maskAlt struct {
	s    string
	fold uint8
}

func (a maskAlt) matches(k int, b byte) bool {
	return a.s[k] == b || a.fold&(1<<k) != 0 && b|0x20 == a.s[k]
}

// maskAltsOf[c] is maskAlts(c).
var maskAltsOf = func() (t [256][]maskAlt) {
	for c := range 256 {
		t[c] = maskAlts(byte(c))
	}
	return t
}()

// maskAlts returns the ways an encoder writes c: as itself; percent-
// encoded, %XX; for an ASCII character, as a JSON \u00XX escape (hex
// digits in either case in both) and JSON's short escape if it has one;
// and a space as "+" (form encoding).
func maskAlts(c byte) []maskAlt {
	const hex = "0123456789abcdef"
	hi, lo := hex[c>>4], hex[c&15]
	fold := func(first int) uint8 {
		var m uint8
		if hi >= 'a' {
			m |= 1 << first
		}
		if lo >= 'a' {
			m |= 1 << (first + 1)
		}
		return m
	}
	alts := []maskAlt{{s: string([]byte{c})}, {s: string([]byte{'%', hi, lo}), fold: fold(1)}}
	if c < 0x80 {
		alts = append(alts, maskAlt{s: string([]byte{'\\', 'u', '0', '0', hi, lo}), fold: fold(4)})
	}
	if i := indexByte("\"\\/\b\f\n\r\t", c); i >= 0 {
		alts = append(alts, maskAlt{s: string([]byte{'\\', "\"\\/bfnrt"[i]})})
	}
	if c == ' ' {
		alts = append(alts, maskAlt{s: "+"})
	}
	return alts
}

func indexByte(s string, c byte) int {
	for i := range len(s) {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// in reports whether s holds a form of the token.
func (f *tokenForms) in(s string) bool { return f.mask(s) != s }

// mask returns s with every form of the token replaced by as many "*".
func (f *tokenForms) mask(s string) string {
	m := &tokenMask{forms: f}
	m.act, m.next = m.arr[0][:0], m.arr[1][:0]
	w := []byte(s)
	m.scan(w, 0)
	return string(w)
}
