package core

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"slices"
	"sync"
)

// rewriteBundleLinks returns body with the URLs of a FHIR JSON Bundle's
// link[].url, entry[].fullUrl and entry[].response.location passed through
// rewrite, as it streams: each read returns what the input read so far
// gave, so a large Bundle reaches the browser as the upstream sends it.
// Everything else passes byte for byte; a body that is not a Bundle (its
// first member is another "resourceType") is passed through untouched.
//
// Its memory does not depend on the Bundle's size or on any one value's:
// strings stream through, and only the strings it might rewrite (the
// values of those three places, up to maxLinkBytes, longer ones pass
// unchanged) and short keys are held.
func rewriteBundleLinks(body io.ReadCloser, rewrite func(string) string) io.ReadCloser {
	out, _ := sniffAndRewrite(body, rewrite, nil)
	return out
}

// appendLinkFunc is a fast path of a rewrite function, on a link's raw
// JSON text (without its quotes): it appends to out the link rewrite
// would give, as a JSON string written as appendJSONString writes it, or
// the link as it is, and reports true; or it reports false, having
// appended nothing, and rewrite judges the link.
type appendLinkFunc func(out, raw []byte) ([]byte, bool)

// sniffAndRewrite is rewriteBundleLinks, and tells whether the body is
// rewritten (its length may change) or passed through. appendLink, if not
// nil, is tried on each link before rewrite.
func sniffAndRewrite(body io.ReadCloser, rewrite func(string) string, appendLink appendLinkFunc) (io.ReadCloser, bool) {
	src := &sniffedBody{body: body}
	var isBundle bool
	src.head, isBundle = sniffBundle(body, src.buf[:0])
	if !isBundle {
		return src, false
	}
	bufs := rewriteBuffers.Get().(*rewriteBuffer)
	return &bundleRewriter{src: src, rewrite: rewrite, appendLink: appendLink, bufs: bufs, in: bufs.in[:], out: bufs.out[:0]}, true
}

// rewriteBuffer is a bundleRewriter's input buffer and its output
// buffer as it grew (to what a read asks for: ReverseProxy asks for 256
// KiB), kept in rewriteBuffers between answers.
type rewriteBuffer struct {
	in  [32 << 10]byte
	out []byte
}

var rewriteBuffers = sync.Pool{New: func() any { return new(rewriteBuffer) }}

// maxPooledOut bounds the output buffer kept for the next answer.
const maxPooledOut = 1 << 20

// sniffLimit bounds how much of a body is read to tell whether it is a
// Bundle.
const sniffLimit = 512

// sniffedBody is a body whose first bytes, head, were read to sniff it.
type sniffedBody struct {
	buf  [sniffLimit]byte
	head []byte // what is left of the sniffed bytes, in buf
	body io.ReadCloser
}

func (s *sniffedBody) Read(p []byte) (int, error) {
	if len(s.head) > 0 {
		n := copy(p, s.head)
		s.head = s.head[n:]
		return n, nil
	}
	return s.body.Read(p)
}

func (s *sniffedBody) Close() error { return s.body.Close() }

// sniffBundle reads the start of body into buf, as much as it takes (up to
// sniffLimit) to see its first member. isBundle is false only when the body
// certainly is not a Bundle: a JSON object whose first member is a
// resourceType other than "Bundle", or not an object at all.
func sniffBundle(body io.Reader, buf []byte) (head []byte, isBundle bool) {
	for len(buf) < sniffLimit {
		n, err := body.Read(buf[len(buf):sniffLimit])
		buf = buf[:len(buf)+n]
		if known, bundle := firstMemberSaysBundle(buf); known {
			return buf, bundle
		}
		if err != nil {
			return buf, false // the whole body: too short to be a Bundle
		}
	}
	return buf, true
}

// firstMemberSaysBundle looks at the start of a JSON text. known is false
// while more input is needed to decide.
func firstMemberSaysBundle(b []byte) (known, bundle bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return false, false
	}
	if b[0] != '{' {
		return true, false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	const key = `"resourceType"`
	if len(b) < len(key) {
		return !bytes.HasPrefix([]byte(key), b), true
	}
	if !bytes.HasPrefix(b, []byte(key)) {
		return true, true // another first member: rewrite to be safe
	}
	b = bytes.TrimLeft(b[len(key):], " \t\r\n")
	if len(b) == 0 {
		return false, false
	}
	if b[0] != ':' {
		return true, true
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	const name = `"Bundle"`
	if len(b) < len(name) {
		return !bytes.HasPrefix([]byte(name), b), false
	}
	return true, bytes.HasPrefix(b, []byte(name))
}

// errNotJSON: a body announced as JSON is not one JSON value.
var errNotJSON = errors.New("smartrefresh: proxy: the FHIR server's JSON answer is malformed")

// Bounds of what a bundleRewriter holds.
const (
	// maxLinkBytes bounds a URL the rewriter rewrites; a longer one passes
	// unchanged.
	maxLinkBytes = 8 << 10
	// maxKeyBytes bounds a key it reads; a longer one is no key it looks
	// for.
	maxKeyBytes = 64
	// maxJSONDepth bounds the nesting of a Bundle, as encoding/json does.
	maxJSONDepth = 10000
	// keyDepth is how deep keys matter: $.entry[*].response.location.
	keyDepth = 4
)

// States of a bundleRewriter between bytes.
const (
	stValue      = iota // a value
	stValueOrEnd        // a value or "]"
	stKeyOrEnd          // a key or "}"
	stKey               // a key
	stColon             // ":"
	stCommaOrEnd        // "," or the container's end
	stDone              // only white space
	stString            // in a string passed through
	stHeld              // in a string held in held
	stLiteral           // in a number, true, false or null
	stSkip              // in a container that holds no link
	stSkipString        // in a string in such a container
)

// stringStops are the bytes a string's scan stops at.
var stringStops = [256]bool{'"': true, '\\': true}

// skipStops are the bytes stSkip stops at.
var skipStops = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// bundleRewriter is the streaming JSON scanner of rewriteBundleLinks. It
// copies its input to out, holding back only the strings it may rewrite.
type bundleRewriter struct {
	src        io.ReadCloser
	rewrite    func(string) string
	appendLink appendLinkFunc // may be nil
	bufs       *rewriteBuffer // in and out, until Close
	in         []byte
	out        []byte // output of the last input read; out[off:] not yet returned (nil: none)
	off        int
	err        error // the error to return once out is drained

	st     int
	esc    bool   // in a string, after a backslash
	isKey  bool   // the string being read is a key
	seen   bool   // a value has begun
	kinds  []byte // '{' or '[' of each open container
	keys   [keyDepth]jsonKey
	held   []byte // a held string's raw text, without quotes
	target bool   // the held string is a value to rewrite
	// skipFrom is the depth of the container being skipped (stSkip): one
	// that holds no link, so only its strings and nesting are followed.
	skipFrom int
}

func (b *bundleRewriter) Read(p []byte) (int, error) {
	for b.off == len(b.out) {
		if b.err != nil {
			return 0, b.err
		}
		// A p with room for more than a read is written straight into;
		// only what does not fit goes to a buffer of its own.
		direct := len(p) >= 2*len(b.in)
		b.out, b.off = b.bufs.out[:0], 0
		if direct {
			b.out = p[:0:len(p)]
		}
		n, err := b.src.Read(b.in)
		for {
			if n > 0 {
				if perr := b.scan(b.in[:n]); perr != nil {
					b.out, b.err = nil, perr
					break
				}
			}
			// A full read means more input is likely waiting: take it
			// too, up to what p holds, so that a large Bundle goes out in
			// fewer writes. A short read is answered at once, so a slow
			// upstream still streams.
			if err != nil || n < len(b.in) || len(b.out)+len(b.in) > len(p) {
				break
			}
			n, err = b.src.Read(b.in)
		}
		if !direct && b.out != nil {
			b.bufs.out = b.out // as it grew
		}
		if b.err != nil {
			continue
		}
		switch {
		case err == io.EOF:
			b.err = io.EOF
			if !b.complete() {
				b.err = errNotJSON
			}
		case err != nil:
			b.err = err // the body could not be read: not the server's JSON
		}
		if direct && len(b.out) <= len(p) {
			// Still p (an append beyond it would have made it longer).
			n := len(b.out)
			b.out = nil
			if n > 0 {
				return n, nil
			}
		}
	}
	n := copy(p, b.out[b.off:])
	b.off += n
	return n, nil
}

// Close closes the body and gives the buffers back: reads after it fail.
func (b *bundleRewriter) Close() error {
	if b.bufs != nil {
		if cap(b.bufs.out) > maxPooledOut {
			b.bufs.out = nil
		}
		rewriteBuffers.Put(b.bufs)
		b.bufs, b.in, b.out, b.off = nil, nil, nil, 0
		b.err = io.ErrClosedPipe
	}
	return b.src.Close()
}

// complete reports whether the input so far is one whole JSON value (or
// nothing).
func (b *bundleRewriter) complete() bool {
	return b.st == stDone || !b.seen || b.st == stLiteral && len(b.kinds) == 0
}

// scan copies chunk to out, running the state machine over it.
func (b *bundleRewriter) scan(chunk []byte) error {
	start := 0 // chunk[start:i] is still to be copied to out
	i := 0
	for i < len(chunk) {
		switch b.st {
		case stString:
			j := stringEnd(chunk[i:], &b.esc)
			if j < 0 {
				i = len(chunk)
				continue
			}
			i += j + 1
			b.endString(keyOther)
			continue
		case stHeld:
			esc := b.esc
			j := stringEnd(chunk[i:], &b.esc)
			end := i + j
			if j < 0 {
				end = len(chunk)
			}
			limit := maxLinkBytes
			if b.isKey {
				limit = maxKeyBytes
			}
			if len(b.held)+end-i > limit {
				// Too long to be what we look for: let it through.
				b.out = append(b.out, '"')
				b.out = append(b.out, b.held...)
				b.held = b.held[:0]
				b.st, start, b.esc = stString, i, esc
				if b.isKey && len(b.kinds) <= keyDepth {
					b.keys[len(b.kinds)-1] = keyOther
				}
				continue
			}
			b.held = append(b.held, chunk[i:end]...)
			if j < 0 {
				i, start = len(chunk), len(chunk)
				continue
			}
			i = end + 1
			start = i
			b.endHeld()
			continue
		case stSkip:
			var err error
			i, err = b.skip(chunk, i)
			if err != nil {
				return err
			}
			continue
		case stSkipString:
			j := stringEnd(chunk[i:], &b.esc)
			if j < 0 {
				i = len(chunk)
				continue
			}
			i += j + 1
			b.st = stSkip
			continue
		case stLiteral:
			if c := chunk[i]; c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-' {
				i++
				continue
			}
			b.afterValue()
			continue
		}
		c := chunk[i]
		if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
			i++
			continue
		}
		switch b.st {
		case stDone:
			return errNotJSON
		case stColon:
			if c != ':' {
				return errNotJSON
			}
			b.st = stValue
		case stCommaOrEnd:
			switch {
			case c == ',' && b.top() == '{':
				b.st = stKey
			case c == ',':
				b.st = stValue
			case c == '}' && b.top() == '{', c == ']' && b.top() == '[':
				b.kinds = b.kinds[:len(b.kinds)-1]
				b.afterValue()
			default:
				return errNotJSON
			}
		case stKeyOrEnd, stKey:
			switch {
			case c == '"':
				b.isKey, b.esc = true, false
				if len(b.kinds) <= keyDepth {
					// A key whole in chunk is read where it is.
					if j := stringEnd(chunk[i+1:min(len(chunk), i+2+maxKeyBytes)], &b.esc); j >= 0 {
						b.endString(linkKey(chunk[i+1 : i+1+j]))
						i += j + 2
						continue
					}
					b.esc = false
					b.out = append(b.out, chunk[start:i]...)
					b.st, b.held, b.target = stHeld, b.held[:0], false
					i++
					start = i
					continue
				}
				b.st = stString
			case c == '}' && b.st == stKeyOrEnd:
				b.kinds = b.kinds[:len(b.kinds)-1]
				b.afterValue()
			default:
				return errNotJSON
			}
		case stValue, stValueOrEnd:
			b.seen = true
			switch {
			case c == '"':
				b.isKey, b.esc = false, false
				if b.atLink() {
					b.out = append(b.out, chunk[start:i]...)
					// A link whole in chunk is rewritten from where it is.
					if j := stringEnd(chunk[i+1:min(len(chunk), i+2+maxLinkBytes)], &b.esc); j >= 0 {
						b.writeLink(chunk[i+1 : i+1+j])
						b.afterValue()
						i += j + 2
						start = i
						continue
					}
					b.esc = false
					b.st, b.held, b.target = stHeld, b.held[:0], true
					i++
					start = i
					continue
				}
				b.st = stString
			case c == '{' || c == '[':
				if len(b.kinds) >= maxJSONDepth {
					return errNotJSON
				}
				b.kinds = append(b.kinds, c)
				if !b.mayHoldLink() {
					b.st, b.skipFrom = stSkip, len(b.kinds)
					break
				}
				b.keys[len(b.kinds)-1] = keyOther
				b.st = stValueOrEnd
				if c == '{' {
					b.st = stKeyOrEnd
				}
			case c == ']' && b.st == stValueOrEnd:
				b.kinds = b.kinds[:len(b.kinds)-1]
				b.afterValue()
			case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n':
				b.st = stLiteral
			default:
				return errNotJSON
			}
		}
		i++
	}
	b.out = append(b.out, chunk[start:i]...)
	return nil
}

// skip runs stSkip over chunk from i and returns where it stopped: at the
// end of chunk, or after the skipped container's end. It reads sixteen
// bytes at a time, as two words: while there is no backslash, the quotes
// seen so far tell which of the brackets are outside strings, and only
// those are followed, without a branch on which bracket it is. Sixteen
// bytes with a backslash, and the last bytes of chunk, go a byte at a time.
func (b *bundleRewriter) skip(chunk []byte, i int) (int, error) {
	for i < len(chunk) {
		inStr := false // chunk[i] is inside a string, after its opening quote
		// kinds[:d] is b.kinds, with room for sixteen brackets above.
		kinds, d := b.kinds[:cap(b.kinds)], len(b.kinds)
		for ; i+16 <= len(chunk); i += 16 {
			w0 := binary.LittleEndian.Uint64(chunk[i:])
			w1 := binary.LittleEndian.Uint64(chunk[i+8:])
			if hasZeroByte(w0^backslashes) || hasZeroByte(w1^backslashes) {
				break
			}
			// in: the bytes after an odd number of quotes (of this word,
			// and the string it began in).
			in0, in1 := zeroBytes(w0^quotes), zeroBytes(w1^quotes)
			in0 ^= in0 << 8
			in1 ^= in1 << 8
			in0 ^= in0 << 16
			in1 ^= in1 << 16
			in0 ^= in0 << 32
			in1 ^= in1 << 32
			if inStr {
				in0 = ^in0
			}
			if in0>>63 != 0 {
				in1 = ^in1
			}
			inStr = in1>>63 != 0
			s0, s1 := brackets(w0)&^in0, brackets(w1)&^in1
			if s0|s1 == 0 {
				continue
			}
			if len(kinds)-d < 16 {
				kinds = slices.Grow(kinds[:d], 64)
				kinds = kinds[:cap(kinds)]
			}
			for h := range 2 {
				stops := s0
				if h == 1 {
					stops = s1
				}
				for ; stops != 0; stops &= stops - 1 {
					k := i + 8*h + bits.TrailingZeros64(stops)>>3
					c := chunk[k]
					if (c>>1^c>>2)&1 == 0 {
						continue // not a bracket (see brackets)
					}
					// An opening bracket is pushed; a closing one must
					// match the top, which it pops. ('{'+2 == '}', '['+2
					// == ']'.)
					open := int(c>>1) & 1
					mismatch := (1 - open) * int(kinds[d-1]+2^c)
					kinds[d] = c
					d += 2*open - 1
					if mismatch != 0 || d > maxJSONDepth {
						b.kinds = kinds[:max(d, 0)]
						return k, errNotJSON
					}
					if d < b.skipFrom {
						b.kinds = kinds[:d]
						b.afterValue()
						return k + 1, nil
					}
				}
			}
		}
		b.kinds = kinds[:d]
		if inStr {
			b.esc = false
			j := stringEnd(chunk[i:], &b.esc)
			if j < 0 {
				b.st = stSkipString
				return len(chunk), nil
			}
			i += j + 1
			continue
		}
		// A byte at a time, for up to 16 bytes.
		for end := min(i+16, len(chunk)); i < end; i++ {
			c := chunk[i]
			if !skipStops[c] {
				continue
			}
			if c == '"' {
				b.esc = false
				j := stringEnd(chunk[i+1:], &b.esc)
				if j < 0 {
					b.st = stSkipString
					return len(chunk), nil
				}
				i += j + 1 // to the closing quote
				continue
			}
			done, err := b.skipBracket(c)
			if err != nil {
				return i, err
			}
			if done {
				return i + 1, nil
			}
		}
	}
	return i, nil
}

// skipBracket follows a bracket in a skipped container, and reports
// whether it closed that container.
func (b *bundleRewriter) skipBracket(c byte) (done bool, err error) {
	switch c {
	case '{', '[':
		if len(b.kinds) >= maxJSONDepth {
			return false, errNotJSON
		}
		b.kinds = append(b.kinds, c)
		return false, nil
	case '}', ']':
	default:
		return false, nil // not a bracket (see brackets)
	}
	if b.top() != c-2 { // '{'+2 == '}', '['+2 == ']'
		return false, errNotJSON
	}
	b.kinds = b.kinds[:len(b.kinds)-1]
	if len(b.kinds) < b.skipFrom {
		b.afterValue()
		return true, nil
	}
	return false, nil
}

// Bytes repeated in a word.
const (
	quotes      = 0x0101010101010101 * '"'
	backslashes = 0x0101010101010101 * '\\'
)

// hasZeroByte reports whether one of the eight bytes of w is zero.
func hasZeroByte(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	return (w-lo)&^w&hi != 0
}

// zeroBytes returns the high bit of each byte of w that is zero, exactly
// (no false positives after a zero byte, unlike the classic has-zero test).
func zeroBytes(w uint64) uint64 {
	const lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	return ^((w&lo7 + lo7) | w) & hi
}

// brackets returns the high bit of each byte of w that is '{', '[', '}'
// or ']'. ('[' | 0x20 == '{', ']' | 0x20 == '}', and '{' ^ '}' == 6: the
// test also lets through 'Y', 'y', '_' and DEL, which skipBracket ignores;
// outside strings, JSON has none of them.)
func brackets(w uint64) uint64 {
	const lo = 0x0101010101010101
	return zeroBytes(((w | lo*0x20) ^ lo*'{') &^ (lo * 6))
}

// stringEnd returns the index in s of the quote that ends a string whose
// text s continues, or -1; esc carries a trailing backslash across calls.
func stringEnd(s []byte, esc *bool) int {
	if *esc {
		return stringEndSlow(s, 0, esc)
	}
	// Short strings: eight bytes at a time, then a table lookup a byte.
	n := min(len(s), 64)
	i := 0
	for i+8 <= n && !quoteOrBackslash(binary.LittleEndian.Uint64(s[i:])) {
		i += 8
	}
	for i < n && !stringStops[s[i]] {
		i++
	}
	if i < n {
		if s[i] == '"' {
			return i
		}
		return stringEndSlow(s, i, esc)
	}
	if i == len(s) {
		return -1
	}
	q := bytes.IndexByte(s[i:], '"')
	seg := s[i:]
	if q >= 0 {
		seg = seg[:q]
	}
	if bytes.IndexByte(seg, '\\') >= 0 {
		return stringEndSlow(s, i, esc)
	}
	if q < 0 {
		return -1
	}
	return i + q // no escapes before the quote: the fast path of long strings
}

// quoteOrBackslash reports whether one of the eight bytes of w is '"' or
// '\\' (the classic has-zero-byte test on w with each one xored away).
func quoteOrBackslash(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lo * '"')
	b := w ^ (lo * '\\')
	return ((q-lo)&^q|(b-lo)&^b)&hi != 0
}

// stringEndSlow is stringEnd from s[from:], a byte at a time.
func stringEndSlow(s []byte, from int, esc *bool) int {
	for i := from; i < len(s); i++ {
		switch c := s[i]; {
		case *esc:
			*esc = false
		case c == '\\':
			*esc = true
		case c == '"':
			return i
		}
	}
	return -1
}

func (b *bundleRewriter) top() byte { return b.kinds[len(b.kinds)-1] }

// endString follows the end of a string passed through.
func (b *bundleRewriter) endString(key jsonKey) {
	if b.isKey {
		if d := len(b.kinds); d <= keyDepth {
			b.keys[d-1] = key
		}
		b.st = stColon
		return
	}
	b.afterValue()
}

// endHeld writes out a held string that has ended: a key as it was, a
// link rewritten.
func (b *bundleRewriter) endHeld() {
	raw := b.held
	if b.isKey {
		b.out = append(append(append(b.out, '"'), raw...), '"')
		b.endString(linkKey(raw))
		return
	}
	b.writeLink(raw)
	b.afterValue()
}

// writeLink writes out a link, whose raw text is raw, rewritten.
func (b *bundleRewriter) writeLink(raw []byte) {
	if b.appendLink != nil {
		if out, ok := b.appendLink(b.out, raw); ok {
			b.out = out
			return
		}
	}
	s, ok := string(raw), true
	if bytes.IndexByte(raw, '\\') >= 0 {
		ok = json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) == nil
	}
	if ok {
		if ns := b.rewrite(s); ns != s {
			b.out = appendJSONString(b.out, ns)
			return
		}
	}
	b.out = append(append(append(b.out, '"'), raw...), '"')
}

// afterValue follows the end of a value.
func (b *bundleRewriter) afterValue() {
	if len(b.kinds) == 0 {
		b.st = stDone
		return
	}
	b.st = stCommaOrEnd
}

// mayHoldLink reports whether the container just opened may hold a link:
// the Bundle, its link and entry arrays, their objects, and an entry's
// response object.
func (b *bundleRewriter) mayHoldLink() bool {
	k := b.kinds
	switch len(k) {
	case 1:
		return true
	case 2:
		return k[0] == '{' && k[1] == '[' && (b.keys[0] == keyLink || b.keys[0] == keyEntry)
	case 3:
		return k[0] == '{' && k[1] == '[' && k[2] == '{'
	case 4:
		return k[0] == '{' && k[1] == '[' && k[2] == '{' && k[3] == '{' && b.keys[0] == keyEntry && b.keys[2] == keyResponse
	}
	return false
}

// atLink reports whether a string value beginning now is one to rewrite:
// $.link[*].url, $.entry[*].fullUrl or $.entry[*].response.location.
func (b *bundleRewriter) atLink() bool {
	k := b.kinds
	if len(k) < 3 || len(k) > 4 || k[0] != '{' || k[1] != '[' || k[2] != '{' {
		return false
	}
	if len(k) == 3 {
		return b.keys[0] == keyLink && b.keys[2] == keyURL || b.keys[0] == keyEntry && b.keys[2] == keyFullURL
	}
	return k[3] == '{' && b.keys[0] == keyEntry && b.keys[2] == keyResponse && b.keys[3] == keyLocation
}

// appendJSONString appends s to out as a JSON string, escaped as
// encoding/json escapes it.
func appendJSONString(out []byte, s string) []byte {
	if !jsonPlain(s) {
		enc, _ := json.Marshal(s) // a string always encodes
		return append(out, enc...)
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// jsonEscaped are the bytes encoding/json does not write as they are:
// control characters, '"', '\\', '<', '>', '&', and those of UTF-8
// sequences (which it checks, and escapes U+2028 and U+2029 of).
var jsonEscaped = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80
	}
	return
}()

// jsonKey is a key on the way to a link, or keyOther.
type jsonKey uint8

const (
	keyOther jsonKey = iota
	keyLink
	keyEntry
	keyURL
	keyFullURL
	keyResponse
	keyLocation
)

// linkKey returns the key whose raw JSON text is raw if it is one on the
// way to a link ("link", "entry", "url", "fullUrl", "response",
// "location"), and keyOther otherwise, without allocating for a plain key.
func linkKey(raw []byte) jsonKey {
	if k := plainLinkKey(raw); k != keyOther || bytes.IndexByte(raw, '\\') < 0 {
		return k
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) != nil {
		return keyOther
	}
	return plainLinkKey([]byte(s))
}

// plainLinkKey is linkKey of a key's value (its raw text if it has no
// escape).
func plainLinkKey(raw []byte) jsonKey {
	switch string(raw) {
	case "link":
		return keyLink
	case "entry":
		return keyEntry
	case "url":
		return keyURL
	case "fullUrl":
		return keyFullURL
	case "response":
		return keyResponse
	case "location":
		return keyLocation
	}
	return keyOther
}
