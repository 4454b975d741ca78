package core_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// encodedToken is an opaque access token with the characters encoders
// escape: "/", "+" and "=" (RFC 6750's b64token allows them all).
const encodedToken = "mF_9.B5f-4.1JqM/Zx+8Lk0pQ2w~Rr7/TvY+Hd3=="

// tokenForm is one way a hostile or careless upstream writes the token,
// and how a reader gets it back (nil: it is verbatim in the text).
type tokenForm struct {
	name   string
	text   string
	decode func(string) (string, error)
}

// pct percent-encodes every byte of s, with hex digits of the case given.
func pct(s string, upper bool) string {
	f := "%%%02x"
	if upper {
		f = "%%%02X"
	}
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, f, s[i])
	}
	return b.String()
}

// jsonU writes every character of s as a JSON \uXXXX escape, or only
// those in only when it is not empty.
func jsonU(s, only string, upper bool) string {
	f := `\u%04x`
	if upper {
		f = `\u%04X`
	}
	var b strings.Builder
	for i := range len(s) {
		if only == "" || strings.IndexByte(only, s[i]) >= 0 {
			fmt.Fprintf(&b, f, s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// mixed writes the characters of s in turn as themselves, %XX and \u00XX.
func mixed(s string) string {
	var b strings.Builder
	for i := range len(s) {
		switch i % 3 {
		case 0:
			b.WriteByte(s[i])
		case 1:
			fmt.Fprintf(&b, "%%%02X", s[i])
		default:
			fmt.Fprintf(&b, `\u%04x`, s[i])
		}
	}
	return b.String()
}

func tokenForms(tok string) []tokenForm {
	unb64 := func(enc *base64.Encoding) func(string) (string, error) {
		return func(s string) (string, error) {
			b, err := enc.DecodeString(s)
			return string(b), err
		}
	}
	var forms []tokenForm
	add := func(name, text string, decode func(string) (string, error)) {
		forms = append(forms, tokenForm{name, text, decode})
	}
	add("verbatim", tok, nil)
	add(`JSON "\/"`, strings.ReplaceAll(tok, "/", `\/`), nil)
	add(`JSON \u00xx, all`, jsonU(tok, "", false), nil)
	add(`JSON \u00XX, all`, jsonU(tok, "", true), nil)
	add(`JSON \u00XX, "/+="`, jsonU(tok, "/+=", true), nil)
	add("query-escaped (%2F%2B%3D)", url.QueryEscape(tok), url.QueryUnescape)
	add("query-escaped, lower case (%2f%2b%3d)", strings.NewReplacer("%2F", "%2f", "%2B", "%2b", "%3D", "%3d").Replace(url.QueryEscape(tok)), url.QueryUnescape)
	add("every byte %XX", pct(tok, true), url.PathUnescape)
	add("every byte %xx", pct(tok, false), url.PathUnescape)
	add(`mixed: raw, %XX, \u00xx`, mixed(tok), url.PathUnescape) // the JSON decoder does the \u
	add("in a URL's query", "https://fhir.example/r4/Patient?_debug="+url.QueryEscape(tok)+"&_count=1", func(s string) (string, error) {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		return u.Query().Get("_debug"), nil
	})
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{{"std", base64.StdEncoding}, {"std unpadded", base64.RawStdEncoding}, {"url", base64.URLEncoding}, {"url unpadded", base64.RawURLEncoding}} {
		for _, pre := range []string{"", "x", "xy", "Bearer "} {
			add(fmt.Sprintf("base64 %s of %q+token", enc.name, pre), enc.enc.EncodeToString([]byte(pre+tok)), unb64(enc.enc))
		}
	}
	return forms
}

// leaked reports whether the browser, reading text as the upstream
// wrote it, gets the token back.
func (f tokenForm) leaked(text, tok string) bool {
	if f.decode == nil {
		return strings.Contains(text, tok)
	}
	d, err := f.decode(text)
	return err == nil && strings.Contains(d, tok)
}

// Items 10/11: an upstream that echoes the token encoded (JSON escapes,
// percent-encoding, base64, as any encoder or a hostile server writes it)
// does not hand it to the page, in a body or a header.
func TestProxyMasksEncodedToken(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	proxy, err := f.r.FHIRProxy(core.ProxyConfig{Upstream: f.srv.FHIRBaseURL, Prefix: "/api/fhir/"})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(f.sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/login":
			g := f.srv.Grant()
			g.AccessToken = encodedToken
			if err := f.r.Save(req.Context(), g); err != nil {
				http.Error(w, err.Error(), 500)
			}
		case strings.HasPrefix(req.URL.Path, "/api/fhir/"):
			proxy.ServeHTTP(w, req)
		default:
			http.NotFound(w, req)
		}
	})))
	defer app.Close()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if resp, err := browser.Get(app.URL + "/login"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", resp, err)
	}

	forms := tokenForms(encodedToken)
	var got string
	f.srv.SetFHIRHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		form := forms[0]
		for _, fm := range forms {
			if fm.name == r.URL.Query().Get("form") {
				form = fm
			}
		}
		h := w.Header()
		h.Set("Content-Type", "application/fhir+json")
		h.Set("X-Request-Id", form.text)
		h.Set("X-Correlation-Id", "req-1 "+form.text)
		h.Set("Location", f.srv.FHIRBaseURL+"/Patient/1/_history/1?t="+form.text)
		if r.URL.Query().Get("bundle") != "" {
			fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"%s/Patient?_token=%s&_count=1"}]}`,
				f.srv.FHIRBaseURL, form.text)
			return
		}
		fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"security","diagnostics":"%s"}]}`, form.text)
	})
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", app.URL+path, nil)
		req.Header.Set("X-CSRF", "1")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, readAll(t, resp)
	}

	var leaks, cases int
	for _, form := range forms {
		for _, bundle := range []bool{false, true} {
			q := url.Values{"form": {form.name}}
			if bundle {
				q.Set("bundle", "1")
			}
			resp, body := get("/api/fhir/Patient/123?" + q.Encode())
			if got != encodedToken {
				t.Fatalf("the upstream got token %q", got)
			}
			if n := resp.Header.Get("Content-Length"); n != "" && n != fmt.Sprint(len(body)) {
				t.Errorf("%s: Content-Length %s, body of %d bytes", form.name, n, len(body))
			}
			var v struct {
				Issue []struct{ Diagnostics string }
				Link  []struct{ URL string }
			}
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Errorf("%s: the masked body is not JSON: %v", form.name, err)
				continue
			}
			var text, where string
			if bundle {
				where = "a Bundle link"
				if len(v.Link) == 1 {
					text = v.Link[0].URL
					i, j := strings.Index(text, "_token="), strings.LastIndex(text, "&_count=1")
					if i >= 0 && j > i {
						text = text[i+len("_token=") : j]
					}
				}
			} else if where = "an OperationOutcome"; len(v.Issue) == 1 {
				text = v.Issue[0].Diagnostics
			}
			cases++
			if form.leaked(text, encodedToken) || strings.Contains(text, encodedToken) {
				leaks++
				t.Errorf("the token, %s, came back in %s", form.name, where)
			}
			if bundle {
				continue
			}
			cases++
			for _, k := range []string{"X-Request-Id", "X-Correlation-Id", "Location"} {
				v := resp.Header.Get(k)
				if strings.Contains(v, form.text) && !strings.Contains(v, "*") {
					leaks++
					t.Errorf("the token, %s, came back in %s", form.name, k)
					break
				}
			}
		}
	}
	t.Logf("%d of %d encoded answers handed the token to the page", leaks, cases)
}
