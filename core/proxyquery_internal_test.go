package core

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzWithoutLaunchParam: whatever query a page sends through the proxy,
// the upstream's query names no launch (RequestLaunch reads none from it),
// and a query without LaunchParam pairs is forwarded byte for byte.
func FuzzWithoutLaunchParam(f *testing.F) {
	for _, s := range []string{"", "name=Smith", "smart_launch=ABC&name=x", "smart%5Flaunch=A", "a=;b&smart_launch=A",
		"smart_launch", "&&smart_launch=&", "name=%zz&smart_launch=A", "x=%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := withoutLaunchParam(q)
		req := &http.Request{URL: &url.URL{RawQuery: out}, Header: http.Header{}}
		if id := RequestLaunch(req); id != "" {
			t.Errorf("withoutLaunchParam(%q) = %q still names launch %q", q, out, id)
		}
		v, _ := url.ParseQuery(q)
		if !v.Has(LaunchParam) && out != q {
			t.Errorf("withoutLaunchParam(%q) = %q, want it unchanged", q, out)
		}
		if len(out) > len(q) {
			t.Errorf("withoutLaunchParam(%q) = %q adds bytes", q, out)
		}
	})
}
