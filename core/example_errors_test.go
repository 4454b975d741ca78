package core_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// ErrorHandler answers a browser navigation that needs a new authorization
// with a redirect to the login page, carrying the page as return_to so that
// the login comes back to it, and everything else as WriteError.
func ExampleErrorHandler() {
	handle := core.ErrorHandler("/launch", nil)

	page := httptest.NewRequest("GET", "/chart", nil)
	page.Header.Set("Sec-Fetch-Mode", "navigate")
	w := httptest.NewRecorder()
	handle(w, page, core.ErrNoToken)
	fmt.Println(w.Code, w.Header().Get("Location"))

	api := httptest.NewRequest("GET", "/api/patient", nil)
	w = httptest.NewRecorder()
	handle(w, api, core.ErrNoToken)
	fmt.Println(w.Code)

	w = httptest.NewRecorder()
	handle(w, page, core.ErrTransient) // never redirected: trying again may work
	fmt.Println(w.Code)
	// Output:
	// 303 /launch?return_to=%2Fchart
	// 401
	// 503
}

// Every error matches one of the three classes; an app asks with errors.Is.
func Example_errorClasses() {
	for _, err := range []error{core.ErrNoRefreshToken, core.ErrOutcomeUnknown, core.ErrNoSession} {
		for _, class := range []error{core.ErrReauthRequired, core.ErrTransient, core.ErrMisconfigured} {
			if errors.Is(err, class) {
				fmt.Println(class)
			}
		}
	}
	// Output:
	// smartrefresh: re-authorization required
	// smartrefresh: temporary failure
	// smartrefresh: misconfigured
}

func ExampleRetryAfter() {
	_, err := core.ParseTokenResponse(http.StatusServiceUnavailable, http.Header{"Retry-After": {"30"}}, nil, time.Time{})
	if d, ok := core.RetryAfter(err); ok {
		fmt.Println("retry after", d, errors.Is(err, core.ErrTransient))
	}
	// Output: retry after 30s true
}

// NewContext is what the middleware adapters use to hand the token to the
// handlers; tests of handlers can use it the same way.
func ExampleNewContext() {
	req := httptest.NewRequest("GET", "/", nil)
	ctx := core.NewContext(req.Context(), &core.Token{AccessToken: "at", Patient: "123"})
	tok, ok := core.TokenFromContext(ctx)
	fmt.Println(ok, tok.Patient)
	// Output: true 123
}
