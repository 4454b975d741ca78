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

// TestLoginURLAndErrorHandler: with both options, in either order, the
// login URL takes the navigations and the error handler the rest.
func TestLoginURLAndErrorHandler(t *testing.T) {
	mine := echoadapter.WithErrorHandler(func(c echo.Context, err error) error {
		return c.String(http.StatusTeapot, "mine")
	})
	loginURL := echoadapter.WithLoginURL("/launch")
	t.Run("login URL, then handler", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(loginURL, mine))
	})
	t.Run("handler, then login URL", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(mine, loginURL))
	})
}
