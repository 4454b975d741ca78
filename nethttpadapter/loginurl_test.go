package nethttpadapter_test

import (
	"net/http"
	"testing"

	"github.com/smartrefresh/smartrefresh/internal/adaptertest"
	"github.com/smartrefresh/smartrefresh/nethttpadapter"
)

func TestLoginURL(t *testing.T) {
	adaptertest.LoginURL(t, app(nethttpadapter.WithLoginURL("/launch")))
}

// TestLoginURLNoLoop: a login URL behind the middleware is never a
// redirect target for itself.
func TestLoginURLNoLoop(t *testing.T) {
	adaptertest.LoginURLNoLoop(t, app(nethttpadapter.WithLoginURL("/api/me")))
}

// TestLoginURLAndErrorHandler: with both options, in either order, the
// login URL takes the navigations and the error handler the rest.
func TestLoginURLAndErrorHandler(t *testing.T) {
	mine := nethttpadapter.WithErrorHandler(func(w http.ResponseWriter, _ *http.Request, _ error) {
		w.WriteHeader(http.StatusTeapot)
	})
	loginURL := nethttpadapter.WithLoginURL("/launch")
	t.Run("login URL, then handler", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(loginURL, mine))
	})
	t.Run("handler, then login URL", func(t *testing.T) {
		adaptertest.LoginURLAndErrorHandler(t, app(mine, loginURL))
	})
}
