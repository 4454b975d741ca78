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
	loginURL     string
}

// WithSkipper makes the middleware pass the requests for which skip returns
// true straight to the next handler, without a token.
func WithSkipper(skip func(*http.Request) bool) Option {
	return func(o *options) { o.skipper = skip }
}

// WithErrorHandler replaces core.WriteError as the answer to a request for
// which no valid token could be had. The next handler does not run after
// it. A nil handler keeps the default. With WithLoginURL too, in either
// order, the browser navigations that need a new authorization go to the
// login URL and h answers the rest.
func WithErrorHandler(h func(w http.ResponseWriter, req *http.Request, err error)) Option {
	return func(o *options) {
		if h != nil {
			o.errorHandler = h
		}
	}
}

// WithLoginURL makes the middleware send browser navigations to loginURL
// (303 See Other) when the user must launch or log in again (see
// core.ErrorHandler). It never redirects a request for the login page
// itself, nor anything but a GET or HEAD navigation; API calls and every
// other error get the error handler's answer (core.WriteError's JSON by
// default, or WithErrorHandler's, given before or after). It panics if
// loginURL is not a valid URL.
func WithLoginURL(loginURL string) Option {
	core.ErrorHandler(loginURL, nil) // panics now on a bad URL
	return func(o *options) { o.loginURL = loginURL }
}

// Middleware returns a middleware that attaches a valid token for the
// session of each request to its context, refreshing it through r when due.
// The token is that of the launch the request names (core.LaunchContext:
// the X-SMART-Launch header or the smart_launch query parameter), or of
// the session's most recent launch; a launch the session no longer holds
// is core.ErrLaunchGone, answered as a re-authorization.
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
	if o.loginURL != "" {
		o.errorHandler = core.ErrorHandler(o.loginURL, o.errorHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if o.skipper != nil && o.skipper(req) {
				next.ServeHTTP(w, req)
				return
			}
			ctx, err := r.AttachRequest(req)
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
