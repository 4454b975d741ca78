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

// TestLoginURLYieldsToErrorHandler: an explicit ErrorHandler wins over
// LoginURL.
func TestLoginURLYieldsToErrorHandler(t *testing.T) {
	adaptertest.LoginURLAndErrorHandler(t, app(ginadapter.WithLoginURL("/launch"), ginadapter.WithErrorHandler(func(c *gin.Context, err error) {
		c.String(http.StatusTeapot, "mine")
	})), http.StatusTeapot)
}
