package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// During an outage of the token endpoint a grant backs off: the failed
// refresh (its lost answer resent once, after Config.ResendAfter) is
// followed by requests that send nothing and get a *BackoffError, a 503
// with Retry-After, until the backoff is over.
func ExampleBackoffError() {
	clock := smarttest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	srv := smarttest.NewServer(smarttest.Options{Now: clock.Now})
	defer srv.Close()
	srv.SetTokenHook(func(w http.ResponseWriter, _ *http.Request, _ http.Handler) {
		w.WriteHeader(http.StatusBadGateway) // the token endpoint is down
	})
	sessions := scs.New()
	r, err := core.New(core.Config{TokenURL: srv.TokenURL, ClientID: "smart-client",
		ClientSecret: "smart-secret", AuthMethod: core.ClientSecretPost, Sessions: sessions,
		Now: clock.Now, ResendAfter: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	ctx, _ := sessions.Load(context.Background(), "")
	if err := r.Save(ctx, srv.Grant()); err != nil {
		panic(err)
	}
	clock.Advance(2 * time.Hour) // the access token has expired

	_, err = r.Token(ctx)
	fmt.Println("refresh:", errors.Is(err, core.ErrOutcomeUnknown), "token calls:", srv.RefreshCalls())
	for range 3 {
		_, err = r.Token(ctx)
		var backoff *core.BackoffError
		wait, _ := core.RetryAfter(err)
		status, _ := core.ErrorResponse(err)
		fmt.Println("backing off:", errors.As(err, &backoff), status, wait > 0 && wait <= time.Second)
	}
	fmt.Println("token calls:", srv.RefreshCalls())
	// Output:
	// refresh: true token calls: 2
	// backing off: true 503 true
	// backing off: true 503 true
	// backing off: true 503 true
	// token calls: 2
}
