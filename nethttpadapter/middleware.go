package nethttpadapter

import (
	"net/http"

	"github.com/smartrefresh/smartrefresh/core"
)

// Option configures Middleware.
type Option func(*options)

type options struct {
	skipper      func(*http.Request) bool
	errorHandler func(http.ResponseWriter, *http.Request, error)
}

// WithSkipper makes the middleware pass the requests for which skip returns
// true straight to the next handler, without a token.
func WithSkipper(skip func(*http.Request) bool) Option {
	return func(o *options) { o.skipper = skip }
}

// WithErrorHandler replaces core.WriteError as the answer to a request for
// which no valid token could be had. The next handler does not run after
// it. A nil handler keeps the default.
func WithErrorHandler(h func(w http.ResponseWriter, req *http.Request, err error)) Option {
	return func(o *options) {
		if h != nil {
			o.errorHandler = h
		}
	}
}

// WithLoginURL makes the middleware send browser navigations to loginURL
// (303 See Other) when the user must launch or log in again, and answer
// API calls and every other error with core.WriteError's JSON: it installs
// core.ErrorHandler(loginURL) as the error handler. It never redirects a
// request for the login page itself, nor anything but a GET or HEAD
// navigation. It replaces WithErrorHandler, and the other way round: the
// last option given wins. It panics if loginURL is not a valid URL.
func WithLoginURL(loginURL string) Option {
	h := core.ErrorHandler(loginURL)
	return func(o *options) { o.errorHandler = h }
}

// Middleware returns a middleware that attaches a valid token for the
// session of each request to its context, refreshing it through r when due.
// It panics if r is nil.
func Middleware(r *core.Refresher, opts ...Option) func(http.Handler) http.Handler {
	if r == nil {
		panic("nethttpadapter: Middleware requires a *core.Refresher")
	}
	o := options{errorHandler: core.WriteError}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if o.skipper != nil && o.skipper(req) {
				next.ServeHTTP(w, req)
				return
			}
			ctx, err := r.Attach(req.Context())
			if err != nil {
				o.errorHandler(w, req, err)
				return
			}
			next.ServeHTTP(w, req.WithContext(ctx))
		})
	}
}

// Token returns the token the middleware attached to req's context.
func Token(req *http.Request) (*core.Token, bool) {
	return core.TokenFromContext(req.Context())
}
