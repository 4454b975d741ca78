package core

import (
	"net/url"
	"strings"
)

// upstreamPath returns the escaped upstream path for a request URL under
// the prefix, or ErrProxyPath.
func (p *proxy) upstreamPath(u *url.URL) (string, error) {
	rest, ok := strings.CutPrefix(u.EscapedPath(), p.cfg.Prefix)
	if !ok || !safeProxyPath(rest) {
		return "", ErrProxyPath
	}
	if rest == "" {
		return p.base, nil
	}
	return p.base + "/" + rest, nil
}

// safeProxyPath reports whether rest, an escaped path below the proxy's
// prefix or the upstream base, stays below it on any server: the rule of
// Client's destinations (unsafePath: no segment a server could take for .
// or .., in any encoding), and segments that stay segments however often a
// server decodes them, in printable ASCII (no encoded "/" or "\", no
// control characters, spaces or non-ASCII, which some servers fold into
// dots or separators). FHIR paths (types, ids, operations) never need more.
func safeProxyPath(rest string) bool {
	if plainPath(rest) {
		return true
	}
	if unsafePath(rest) {
		return false
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if !plainSegment(seg) {
			return false
		}
	}
	return true
}

// plainSegment reports whether the escaped segment seg is printable ASCII
// without "/" or "\" in each of up to maxUnescapes decodings.
func plainSegment(seg string) bool {
	for range maxUnescapes + 1 {
		for i := range len(seg) {
			if c := seg[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '\\' {
				return false
			}
		}
		if !strings.Contains(seg, "%") {
			return true
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return false
		}
		seg = dec
	}
	return false
}

// plainPath reports, in one pass, whether rest is made of segments of
// letters, digits and "-_.$" alone, none of them all dots: the paths of
// nearly every FHIR URL, which need no decoding to be judged.
func plainPath[S string | []byte](rest S) bool {
	n, ok := plainPathLen(rest)
	return ok && n == len(rest)
}

// plainPathLen returns the length of rest up to its first "?" or "#" (all
// of it if it has none), and whether that much is a plain path (see
// plainPath).
func plainPathLen[S string | []byte](rest S) (int, bool) {
	dots := true // the segment so far is all dots
	for i := range len(rest) {
		switch c := rest[i]; pathBytes[c] {
		case pathLetter:
			dots = false
		case pathDot:
		case pathSlash:
			if dots && i > 0 && rest[i-1] == '.' {
				return i, false
			}
			dots = true
		case pathEnd:
			return i, !dots || i == 0 || rest[i-1] != '.'
		default:
			return i, false
		}
	}
	return len(rest), !dots || len(rest) == 0 || rest[len(rest)-1] != '.'
}

// Classes of bytes in a plain path.
const (
	pathOther  = iota
	pathLetter // a letter, digit, "-", "_" or "$"
	pathDot
	pathSlash
	pathEnd // "?" or "#"
)

var pathBytes = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '$':
			t[c] = pathLetter
		case c == '.':
			t[c] = pathDot
		case c == '/':
			t[c] = pathSlash
		case c == '?', c == '#':
			t[c] = pathEnd
		}
	}
	return
}()
