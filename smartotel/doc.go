// Package smartotel reports what a smartrefresh Refresher does to
// OpenTelemetry: metrics of its token calls and a span per token call. It
// is a module of its own, so that an app that does not use OpenTelemetry
// does not depend on it:
//
//	go get github.com/smartrefresh/smartrefresh/smartotel
//
// New returns a core.Observer; set it as the Refresher's Config.Observer:
//
//	observer, err := smartotel.New(smartotel.Config{MeterProvider: mp, TracerProvider: tp})
//	if err != nil {
//		return err
//	}
//	refresher, err := core.New(core.Config{ /* ... */ Observer: observer})
//
// The app's own OnRefresh, OnRefreshError and OnReauth hooks keep working
// beside it. Neither a metric nor a span ever holds a token or secret.
//
// # Metrics
//
//   - smartrefresh.refreshes: token calls, by outcome (success,
//     outcome_unknown, shed, transient, reauth_required, misconfigured) and,
//     on success, rotated;
//   - smartrefresh.refresh.duration: seconds per token call, retries
//     included, by outcome;
//   - smartrefresh.refresh.waiters: requests that waited on a refresh
//     another request started;
//   - smartrefresh.reauths: sessions whose token was removed, by reason
//     (no_refresh_token, corrupt_session, revoked, invalid_grant);
//   - smartrefresh.refresh.resends: refresh tokens sent a second time after
//     the answer to the first was lost (core.Config.ResendAfter).
//
// # Traces
//
// Each token call is a span, smartrefresh.refresh, of kind client, with the
// attributes smartrefresh.outcome, smartrefresh.shared and, on success,
// smartrefresh.rotated; a failed call has the status Error. The token
// request runs inside it, so an instrumented HTTPClient's span is its
// child.
package smartotel
