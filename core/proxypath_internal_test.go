package core

import (
	"net/url"
	"strings"
	"testing"
)

// hostileView returns the segments some server could make of an escaped
// path: each layer of decoding, split on "/" and "\", each segment cut at
// ";" (Tomcat), with look-alike dots folded to "." (NFKC) and trailing
// spaces and dots as Windows strips them. ok is false when some layer has
// a segment the server would resolve as "." or "..", or a control
// character.
func hostileView(p string) (ok bool) {
	for range maxUnescapes + 2 {
		for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
			seg, _, _ = strings.Cut(seg, ";")
			seg = strings.NewReplacer("\uFF0E", ".", "\uFE52", ".", "\u2024", ".").Replace(seg)
			if strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return false
			}
			if strings.Contains(seg, ".") && strings.TrimRight(seg, ". ") == "" {
				return false
			}
		}
		dec, err := url.PathUnescape(p)
		if err != nil || dec == p {
			return true
		}
		p = dec
	}
	return true
}

// FuzzProxyPath: whatever path a browser sends under the prefix, the proxy
// forwards it only when no server could resolve it outside the upstream
// base, and forwards exactly the segments it checked.
func FuzzProxyPath(f *testing.F) {
	for _, s := range []string{
		"Patient/123", "..;/admin", "%2e%2e%3b/x", ".../x", "..%20/x", "Patient%00", "%252e%252e/x",
		"\uFF0E\uFF0E/x", "Patient/..%5c..%5cadmin", ".%2E/x", "Patient/_history", "$everything", "a;b/c",
	} {
		f.Add(s)
	}
	p := &proxy{cfg: ProxyConfig{Prefix: "/fhir/"}, base: "/R4"}
	f.Fuzz(func(t *testing.T, rest string) {
		u, err := url.Parse("https://app.example/fhir/" + rest)
		if err != nil {
			return
		}
		path, err := p.upstreamPath(u)
		if err != nil {
			return
		}
		if !hostileView(path) {
			t.Fatalf("forwarded %q as %q, which a server could resolve outside the base", rest, path)
		}
		dec, err := url.PathUnescape(path)
		if err != nil {
			t.Fatalf("forwarded %q as %q, which does not decode", rest, path)
		}
		out := url.URL{Path: dec, RawPath: path}
		if got := out.EscapedPath(); got != path {
			t.Fatalf("forwarded %q: the request line would read %q, not the checked %q", rest, got, path)
		}
		if !strings.HasPrefix(path, "/R4") {
			t.Fatalf("forwarded %q as %q", rest, path)
		}
	})
}

// browserPath resolves a path as a WHATWG URL parser does for http(s):
// "\" is "/", tabs and newlines vanish, "%2e" is a dot.
func browserPath(ref string) (host, path string, ok bool) {
	ref = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(ref)
	if i := strings.IndexAny(ref, "?#"); i >= 0 {
		ref = ref[:i] // the query and fragment do not move the page
	}
	ref = strings.ReplaceAll(ref, `\`, "/")
	u, err := url.Parse(ref)
	if err != nil {
		return "", "", false
	}
	app, _ := url.Parse("https://app.example/")
	r := app.ResolveReference(u)
	var out []string
	for _, seg := range strings.Split(r.EscapedPath(), "/")[1:] {
		switch strings.ToLower(seg) {
		case ".", "%2e":
			continue
		case "..", ".%2e", "%2e.", "%2e%2e":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, seg)
	}
	return r.Host, "/" + strings.Join(out, "/"), true
}

// FuzzRewriteURL: a URL the upstream sends is either left as it is or
// rewritten to one a browser resolves under the prefix, on the app.
func FuzzRewriteURL(f *testing.F) {
	for _, s := range []string{
		"https://fhir.example/R4/Patient?page=2", "https://fhir.example/R4/../../logout",
		"https://fhir.example/R4//evil.example/x", `https://fhir.example/R4/\evil.example`,
		"https://fhir.example/R4/%2e%2e/x", "https://fhir.example/R4?x", "https://fhir.example/R4#f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, prefix := range []string{"/", "/fhir/"} {
			p := &proxy{from: "https://fhir.example/R4", to: prefix}
			got := p.rewriteURL(s)
			if got == s {
				continue
			}
			host, path, ok := browserPath(got)
			if !ok || host != "app.example" || !strings.HasPrefix(path+"/", prefix) {
				t.Fatalf("prefix %s: %q became %q, which a browser resolves to %s %s", prefix, s, got, host, path)
			}
		}
	})
}
