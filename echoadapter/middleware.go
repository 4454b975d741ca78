package echoadapter

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/smartrefresh/smartrefresh/core"
)

// Config configures the middleware.
type Config struct {
	// Refresher provides the tokens. Required.
	Refresher *core.Refresher
	// Skipper defines a function to skip the middleware: skipped requests
	// reach the next handler without a token. Default
	// middleware.DefaultSkipper (skip nothing).
	Skipper middleware.Skipper
	// ErrorHandler answers a request for which no valid token could be had;
	// the next handler does not run, and its return value is the request's
	// error. Default: core.WriteError, returning nil.
	ErrorHandler func(c echo.Context, err error) error
	// LoginURL, when set, makes the middleware send browser navigations
	// to it (303 See Other) when the user must launch or log in again,
	// with core.ErrorHandler; API calls and every other error go to
	// ErrorHandler (core.WriteError's JSON by default). It never redirects
	// a request for the login page itself, nor anything but a GET or HEAD
	// navigation.
	LoginURL string
}

// defaultErrorHandler writes the default answer to err with core.WriteError
// and returns nil.
func defaultErrorHandler(c echo.Context, err error) error {
	core.WriteError(c.Response(), c.Request(), err)
	return nil
}

// MiddlewareWithConfig returns the middleware configured by cfg. It panics
// if cfg.Refresher is nil or cfg.LoginURL is not a valid URL.
//
// Each request gets the token of the launch it names
// (core.LaunchContext: the X-SMART-Launch header or the smart_launch query
// parameter), or of the session's most recent launch; a launch the session
// no longer holds is core.ErrLaunchGone, answered as a re-authorization.
func MiddlewareWithConfig(cfg Config) echo.MiddlewareFunc {
	if cfg.Refresher == nil {
		panic("echo: smartrefresh middleware requires a Refresher")
	}
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = defaultErrorHandler
	}
	if cfg.LoginURL != "" {
		otherwise := cfg.ErrorHandler
		core.ErrorHandler(cfg.LoginURL, nil) // panics now on a bad URL
		cfg.ErrorHandler = func(c echo.Context, err error) error {
			var ret error
			core.ErrorHandler(cfg.LoginURL, func(http.ResponseWriter, *http.Request, error) {
				ret = otherwise(c, err)
			})(c.Response(), c.Request(), err)
			return ret
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			req := c.Request()
			ctx, err := cfg.Refresher.AttachRequest(req)
			if err != nil {
				return cfg.ErrorHandler(c, err)
			}
			c.SetRequest(req.WithContext(ctx))
			return next(c)
		}
	}
}

// Option configures Middleware.
type Option func(*Config)

// WithSkipper sets Config.Skipper.
func WithSkipper(s middleware.Skipper) Option {
	return func(c *Config) { c.Skipper = s }
}

// WithErrorHandler sets Config.ErrorHandler.
func WithErrorHandler(h func(c echo.Context, err error) error) Option {
	return func(c *Config) { c.ErrorHandler = h }
}

// WithLoginURL sets Config.LoginURL.
func WithLoginURL(loginURL string) Option {
	return func(c *Config) { c.LoginURL = loginURL }
}

// Middleware returns the middleware for r with opts applied. It panics if r
// is nil.
func Middleware(r *core.Refresher, opts ...Option) echo.MiddlewareFunc {
	cfg := Config{Refresher: r}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	return MiddlewareWithConfig(cfg)
}

// Token returns the token the middleware attached to the request of c.
func Token(c echo.Context) (*core.Token, bool) {
	return core.TokenFromContext(c.Request().Context())
}
