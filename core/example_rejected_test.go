package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// A FHIR server that rejects every token gets one refresh: the request
// that triggered it gets the replay's 401, the next ones a
// *TokenRejectedError instead of another refresh.
func ExampleTokenRejectedError() {
	srv := smarttest.NewServer(smarttest.Options{})
	defer srv.Close()
	fhir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer fhir.Close()

	sessions := scs.New()
	r, err := core.New(core.Config{TokenURL: srv.TokenURL, ClientID: "smart-client",
		ClientSecret: "smart-secret", AuthMethod: core.ClientSecretPost, Sessions: sessions})
	if err != nil {
		panic(err)
	}
	ctx, _ := sessions.Load(context.Background(), "")
	if err := r.Save(ctx, srv.Grant()); err != nil {
		panic(err)
	}
	for range 3 {
		resp, err := r.Client(ctx).Get(fhir.URL + "/Patient/123")
		var rejected *core.TokenRejectedError
		switch {
		case errors.As(err, &rejected):
			fmt.Println("rejected:", rejected.Code, errors.Is(err, core.ErrTokenRejected))
		case err != nil:
			fmt.Println(err)
		default:
			resp.Body.Close()
			fmt.Println(resp.StatusCode)
		}
	}
	fmt.Println("token calls:", srv.RefreshCalls())
	// Output:
	// 401
	// rejected: insufficient_scope true
	// rejected: insufficient_scope true
	// token calls: 1
}
