package echoadapter_test

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/smartrefresh/smartrefresh/echoadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

func TestLoginURL(t *testing.T) {
	adaptertest.LoginURL(t, app(echoadapter.WithLoginURL("/launch")))
}

// TestLoginURLNoLoop: a login URL behind the middleware is never a
// redirect target for itself.
func TestLoginURLNoLoop(t *testing.T) {
	adaptertest.LoginURLNoLoop(t, app(echoadapter.WithLoginURL("/api/me")))
}

// TestLoginURLYieldsToErrorHandler: an explicit ErrorHandler wins over
// LoginURL.
func TestLoginURLYieldsToErrorHandler(t *testing.T) {
	adaptertest.LoginURLAndErrorHandler(t, app(echoadapter.WithLoginURL("/launch"), echoadapter.WithErrorHandler(func(c echo.Context, err error) error {
		return c.String(http.StatusTeapot, "mine")
	})), http.StatusTeapot)
}
