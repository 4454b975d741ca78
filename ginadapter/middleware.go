package ginadapter

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/core"
)

// Config configures the middleware.
type Config struct {
	// Refresher provides the tokens. Required.
	Refresher *core.Refresher
	// Skipper, when it returns true, lets the request through without a
	// token. Default: skip nothing.
	Skipper func(c *gin.Context) bool
	// ErrorHandler answers a request for which no valid token could be had.
	// The middleware aborts the chain after it. Default:
	// core.WriteError, then abort.
	ErrorHandler func(c *gin.Context, err error)
	// LoginURL, when set, makes the middleware send browser navigations
	// to it (303 See Other) when the user must launch or log in again,
	// with core.ErrorHandler; API calls and every other error go to
	// ErrorHandler (core.WriteError's JSON by default). It never redirects a
	// request for the login page itself, nor anything but a GET or HEAD
	// navigation.
	LoginURL string
}

// defaultErrorHandler writes the default answer to err with core.WriteError
// and aborts the chain.
func defaultErrorHandler(c *gin.Context, err error) {
	core.WriteError(c.Writer, c.Request, err)
	c.Abort()
}

// New returns the middleware configured by cfg. It panics if cfg.Refresher
// is nil or cfg.LoginURL is not a valid URL.
//
// Each request gets the token of the launch it names
// (core.LaunchContext: the X-SMART-Launch header or the smart_launch query
// parameter), or of the session's most recent launch; a launch the session
// no longer holds is core.ErrLaunchGone, answered as a re-authorization.
func New(cfg Config) gin.HandlerFunc {
	if cfg.Refresher == nil {
		panic("ginadapter: New requires a Refresher")
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = defaultErrorHandler
	}
	if cfg.LoginURL != "" {
		otherwise := cfg.ErrorHandler
		core.ErrorHandler(cfg.LoginURL, nil) // panics now on a bad URL
		cfg.ErrorHandler = func(c *gin.Context, err error) {
			core.ErrorHandler(cfg.LoginURL, func(http.ResponseWriter, *http.Request, error) {
				otherwise(c, err)
			})(c.Writer, c.Request, err)
		}
	}
	return func(c *gin.Context) {
		if cfg.Skipper != nil && cfg.Skipper(c) {
			c.Next()
			return
		}
		ctx, err := cfg.Refresher.AttachRequest(c.Request)
		if err != nil {
			cfg.ErrorHandler(c, err)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// Option configures Middleware.
type Option func(*Config)

// WithSkipper sets Config.Skipper.
func WithSkipper(s func(c *gin.Context) bool) Option {
	return func(c *Config) { c.Skipper = s }
}

// WithErrorHandler sets Config.ErrorHandler.
func WithErrorHandler(h func(c *gin.Context, err error)) Option {
	return func(c *Config) { c.ErrorHandler = h }
}

// WithLoginURL sets Config.LoginURL.
func WithLoginURL(loginURL string) Option {
	return func(c *Config) { c.LoginURL = loginURL }
}

// Middleware returns the middleware for r with opts applied. It panics if r
// is nil.
func Middleware(r *core.Refresher, opts ...Option) gin.HandlerFunc {
	cfg := Config{Refresher: r}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	return New(cfg)
}

// Token returns the token the middleware attached to c.Request.
func Token(c *gin.Context) (*core.Token, bool) {
	return core.TokenFromContext(c.Request.Context())
}
