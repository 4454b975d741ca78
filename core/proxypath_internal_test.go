package core

import (
	"encoding/json"
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
	for _, s := range appendBodyURLCases {
		f.Add(s.raw)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, prefix := range []string{"/", "/fhir/", "/a&b/"} {
			p := &proxy{from: "https://fhir.example/R4", to: prefix}
			if fast, ok := p.appendBodyURL([]byte("x"), []byte(s)); ok {
				// The fast path took s as the raw text of a JSON string:
				// it must give what the full check gives for its value.
				var v string
				if err := json.Unmarshal([]byte(`"`+s+`"`), &v); err != nil || v != s {
					t.Fatalf("prefix %s: the fast path took %q, whose JSON text is not its value", prefix, s)
				}
				if want := "x" + string(appendJSONString(nil, p.rewriteBodyURL(s))); string(fast) != want {
					t.Fatalf("prefix %s: %q: the fast path gave %s, the full check %s", prefix, s, fast, want)
				}
			} else if string(fast) != "x" {
				t.Fatalf("prefix %s: %q: the fast path declined, having appended %q", prefix, s, fast)
			}
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

// appendBodyURLCases are links as a Bundle's JSON text holds them, and
// whether appendBodyURL, under https://fhir.example/R4 and /fhir/, takes
// them (and gives want) or leaves them to rewriteBodyURL.
var appendBodyURLCases = []struct {
	raw  string
	ok   bool
	want string
}{
	{"https://fhir.example/R4/Patient/123", true, "/fhir/Patient/123"},
	{"https://fhir.example/R4/Observation?_count=10,20:x/y~z", true, "/fhir/Observation?_count=10,20:x/y~z"},
	{"https://fhir.example/R4/Patient/1/_history/2#frag", true, "/fhir/Patient/1/_history/2#frag"},
	{"https://fhir.example/R4/$everything", true, "/fhir/$everything"},
	{"https://fhir.example/R4/", true, "/fhir/"},
	{"https://fhir.example/R4/a.b/c..d/...e", true, "/fhir/a.b/c..d/...e"},
	{"https://fhir.example/R4/Patient?q=a/../b", true, "/fhir/Patient?q=a/../b"}, // the query does not move the page
	{"https://fhir.example/R4", false, ""},
	{"https://fhir.example/R4?x=1", false, ""},
	{"https://fhir.example/R4#f", false, ""},
	{"https://fhir.example/R4x/Patient", false, ""},
	{"https://fhir.example/R/Patient", false, ""},
	{"https://fhir.example/R4//evil.example/x", false, ""},
	{"https://fhir.example/R4/../../logout", false, ""},
	{"https://fhir.example/R4/Patient/..", false, ""},
	{"https://fhir.example/R4/./x", false, ""},
	{"https://fhir.example/R4/.", false, ""},
	{"https://fhir.example/R4/..;/x", false, ""},
	{"https://fhir.example/R4/%2e%2e/x", false, ""},
	{"https://fhir.example/R4/Patient%2F1", false, ""},
	{`https://fhir.example/R4/\\evil.example`, false, ""},
	{`https://fhir.example/R4/Patient\u002f1`, false, ""},
	{`https://fhir.example/R4\u002fPatient`, false, ""},
	{"https://fhir.example/R4/Pat ient", false, ""},
	{"https://fhir.example/R4/Patient?name=A&b", false, ""}, // JSON writes "&" escaped
	{"https://fhir.example/R4/Patient?name=<b>", false, ""}, // and "<"
	{"https://fhir.example/R4/Patient?name=\u00e9", false, ""},
	{"https://fhir.example/R4/Patient?name=é", false, ""},
	{"https://fhir.example/R4/Patient\t", false, ""},
	{"Patient/123", false, ""},
	{"", false, ""},
}

// TestAppendBodyURL: the fast path takes the common links, gives for them
// what the full check gives, and leaves every other one to it.
func TestAppendBodyURL(t *testing.T) {
	p := &proxy{from: "https://fhir.example/R4", to: "/fhir/"}
	for _, c := range appendBodyURLCases {
		out, ok := p.appendBodyURL([]byte("x"), []byte(c.raw))
		if ok != c.ok {
			t.Errorf("%q: took it %v, want %v", c.raw, ok, c.ok)
			continue
		}
		if !ok {
			if string(out) != "x" {
				t.Errorf("%q: declined, having appended %q", c.raw, out)
			}
			continue
		}
		if want := `x"` + c.want + `"`; string(out) != want {
			t.Errorf("%q: gave %s, want %s", c.raw, out, want)
		}
		if full := p.rewriteBodyURL(c.raw); full != c.want {
			t.Errorf("%q: the full check gives %q, want %q", c.raw, full, c.want)
		}
	}
	// A prefix JSON escapes is left to the full check.
	p.to = "/a&b/"
	if _, ok := p.appendBodyURL(nil, []byte("https://fhir.example/R4/Patient")); ok {
		t.Error("took a link for a prefix JSON escapes")
	}
}
