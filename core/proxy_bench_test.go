package core_test

import (
	"io"
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

// BenchmarkProxyBundle compares, in one run, a large searchset Bundle
// (12 MiB, 25,000 fullUrls) through the FHIR proxy with its links
// rewritten (variant=rewrite, application/fhir+json) against the same
// bytes passed through (variant=passthrough, application/octet-stream):
// the same upstream, session, token and masking, only the rewriter differs.
// MB/s is of the Bundle; B/op shows the heap does not grow with it;
// cpu-ns/op is the process's CPU time per Bundle, which a busy machine
// disturbs less than ns/op.
func BenchmarkProxyBundle(b *testing.B) {
	var bundle []byte
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Get("Authorization")) < len("Bearer x") {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", r.URL.Query().Get("type"))
		w.Write(bundle)
	}))
	defer upstream.Close()
	bundle = core.Searchset(upstream.URL+"/fhir", 12<<20)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableCompression = true // as a plain proxy would, for both variants

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
	app := httptest.NewServer(sm.LoadAndSave(fhirProxy))
	defer app.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	for _, v := range []struct{ name, contentType string }{
		{"passthrough", "application/octet-stream"},
		{"rewrite", "application/fhir+json"},
	} {
		b.Run("variant="+v.name, func(b *testing.B) {
			b.SetBytes(int64(len(bundle)))
			b.ReportAllocs()
			cpu := core.ProcessCPU()
			defer func() { b.ReportMetric(float64(core.ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op") }()
			for b.Loop() {
				req, _ := http.NewRequest("GET", app.URL+"/fhir/Observation?type="+url.QueryEscape(v.contentType), nil)
				req.Header.Set("X-CSRF", "1")
				req.AddCookie(cookie)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || n < int64(len(bundle))*9/10 {
					b.Fatalf("status %d, %d bytes: %v", resp.StatusCode, n, err)
				}
			}
		})
	}
}
