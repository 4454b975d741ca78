package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

// selfApp is the -self target: a strict mock SMART server (which counts the
// token calls and detects refresh-token reuse) and a minimal net/http app
// with the demos' routes, both on loopback ports of this process.
type selfApp struct {
	srv  *smarttest.Server
	http *http.Server
	url  string
}

func startSelf(tokenTTL time.Duration) (*selfApp, error) {
	srv := smarttest.NewServer(smarttest.Options{AccessTokenTTL: tokenTTL})
	// As in the demos, IdleTimeout makes every request write its copy of
	// the session back, so slow requests write stale copies over rotated
	// tokens: the case the Refresher must handle without a reuse.
	sm := scs.New()
	sm.IdleTimeout = 30 * time.Minute
	o := srv.Options()
	r, err := core.New(core.Config{
		TokenURL: srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm,
		HTTPClient: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 256},
			Timeout:   30 * time.Second,
		},
	})
	if err != nil {
		srv.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	// /launch stands for the whole launch (authorize, callback, code
	// exchange): it saves a fresh grant in the session, as the callback
	// does, and sends the browser home.
	mux.HandleFunc("GET /launch", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Save(req.Context(), srv.Grant()); err != nil {
			core.WriteError(w, req, err)
			return
		}
		http.Redirect(w, req, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "smartrefresh loadtest app\n")
	})
	withToken := nethttpadapter.Middleware(r)
	mux.Handle("GET /api/patient", withToken(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok, _ := nethttpadapter.Token(req)
		resp, err := r.Client(req.Context()).Get(srv.FHIRBaseURL + "/Patient/" + url.PathEscape(tok.Patient))
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})))
	mux.Handle("GET /api/token", withToken(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info, err := r.Info(req.Context())
		if err != nil {
			core.WriteError(w, req, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"expires_at": info.Expiry.Format(time.RFC3339),
			"scope":      info.Scope,
			"patient":    info.Patient,
			"refreshes":  info.Refreshes,
		})
	})))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	a := &selfApp{
		srv:  srv,
		http: &http.Server{Handler: sm.LoadAndSave(mux), ReadHeaderTimeout: 10 * time.Second},
		url:  "http://" + ln.Addr().String(),
	}
	go a.http.Serve(ln)
	return a, nil
}

// Close stops the app and the mock server.
func (a *selfApp) Close() {
	a.http.Close()
	a.srv.Close()
}
