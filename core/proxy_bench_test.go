package core_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// BenchmarkFHIRProxy compares the FHIR proxy with a plain
// httputil.ReverseProxy that adds a fixed token, on the same request (GET
// of a Patient), the same upstream, transport and session middleware.
// Compare the variants with benchstat -col /variant.
func BenchmarkFHIRProxy(b *testing.B) {
	patient := []byte(`{"resourceType":"Patient","id":"123","active":true,"name":[{"use":"official","given":["Amy","V."],"family":"Shaw"}],"gender":"female","birthDate":"1987-02-20"}`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Get("Authorization")) < len("Bearer x") {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write(patient)
	}))
	defer upstream.Close()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64

	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	sm := scs.New()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: "smart-client", ClientSecret: "smart-secret",
		AuthMethod: core.ClientSecretPost, Sessions: sm, HTTPClient: &http.Client{Transport: transport},
	})
	if err != nil {
		b.Fatal(err)
	}
	grant := srv.Grant()
	grant.Expiry = time.Now().Add(24 * time.Hour)
	// A session holding the grant, and its cookie.
	rec := httptest.NewRecorder()
	sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := r.Save(req.Context(), grant); err != nil {
			b.Fatal(err)
		}
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cookie := rec.Result().Cookies()[0]

	fhirProxy, err := r.FHIRProxy(core.ProxyConfig{Upstream: upstream.URL + "/fhir", Prefix: "/fhir/"})
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse(upstream.URL + "/fhir")
	plain := &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = target.Path + pr.In.URL.Path[len("/fhir"):]
			pr.Out.URL.RawPath = ""
			pr.Out.Header.Set("Authorization", "Bearer "+grant.AccessToken)
			pr.Out.Header.Del("Cookie")
		},
	}
	for _, v := range []struct {
		name    string
		handler http.Handler
	}{
		{"reverseproxy", sm.LoadAndSave(plain)},
		{"fhirproxy", sm.LoadAndSave(fhirProxy)},
	} {
		b.Run("variant="+v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/fhir/Patient/123", nil)
				req.Header.Set("X-CSRF", "1")
				req.AddCookie(cookie)
				w := httptest.NewRecorder()
				v.handler.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
