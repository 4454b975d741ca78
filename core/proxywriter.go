package core

import "net/http"

// proxyCSP keeps an answer of the proxy from ever running script, loading
// anything or being framed, should a browser render it as a page.
const proxyCSP = "sandbox; default-src 'none'; frame-ancestors 'none'"

// safeWriter is the ResponseWriter of every answer of the proxy: the
// upstream's, and the proxy's own errors (whatever ErrorHandler writes).
// It sets the headers that keep patient data out of caches and keep an
// answer from acting on the app's origin, and it does not forward 1xx
// answers (the upstream's Early Hints could carry anything).
type safeWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *safeWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		// ReverseProxy copies a 1xx answer's headers into Header, writes
		// it, then clears Header; not writing it is all it takes.
		return
	}
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Del("Expires")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", proxyCSP)
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if h.Get("Content-Type") == "" {
			// An ErrorHandler's untyped answer is not sniffed into HTML.
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *safeWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (to
// flush a streaming answer).
func (w *safeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
