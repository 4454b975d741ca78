package core_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// A refresh that found no free MaxConcurrentRefreshes slot within
// RefreshQueueTimeout sent nothing and kept the token: the app answers 503
// with the Retry-After the error carries (WriteError does).
func ExampleOverloadError() {
	var err error = &core.OverloadError{Waited: 5 * time.Second, RetryAfter: 7 * time.Second}

	var oe *core.OverloadError
	fmt.Println(errors.Is(err, core.ErrOverloaded), errors.Is(err, core.ErrTransient),
		errors.Is(err, core.ErrOutcomeUnknown), errors.As(err, &oe))

	w := httptest.NewRecorder()
	core.WriteError(w, httptest.NewRequest("GET", "/api/patient", nil), err)
	fmt.Println(w.Code, w.Header().Get("Retry-After"))
	// Output:
	// true true false true
	// 503 7
}
