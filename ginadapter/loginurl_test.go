package ginadapter_test

import (
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/smartrefresh/smartrefresh/ginadapter"
	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
)

func TestLoginURL(t *testing.T) {
	adaptertest.LoginURL(t, app(ginadapter.WithLoginURL("/launch")))
}

// TestLoginURLNoLoop: a login URL behind the middleware is never a
// redirect target for itself.
func TestLoginURLNoLoop(t *testing.T) {
	adaptertest.LoginURLNoLoop(t, app(ginadapter.WithLoginURL("/api/me")))
}

// TestLoginURLAndErrorHandler: with both options, in either order, the
// login URL takes the navigations and the error handler the rest.
func TestLoginURLAndErrorHandler(t *testing.T) {
	mine := ginadapter.WithErrorHandler(func(c *gin.Context, err error) {
		c.String(http.StatusTeapot, "mine")
	})
	loginURL := ginadapter.WithLoginURL("/launch")
	t.Run("login URL, then handler", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(loginURL, mine))
	})
	t.Run("handler, then login URL", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(mine, loginURL))
	})
}
