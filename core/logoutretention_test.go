package core_test

import (
	"errors"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestLogoutOutlivesTheSessionsDeadline: Logout remembers the revoked grant
// as long as a copy of the session may live, as a redemption does. A
// "remember me" session (SetDeadline 30 days, Lifetime 24 h) whose stale
// copy a slow request wrote back after the Logout, used again two days
// later, must not refresh the logged-out grant back into the session.
func TestLogoutOutlivesTheSessionsDeadline(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	f.sm.Lifetime = 24 * time.Hour
	session, _ := f.login()
	ctx := f.request(session)
	f.sm.SetDeadline(ctx, time.Now().Add(30*24*time.Hour))
	f.slowCommit(ctx)

	slow := f.request(session) // a slow request that loaded the token
	if _, err := f.r.Token(slow); err != nil {
		t.Fatal(err)
	}
	if err := f.logout(session); err != nil {
		t.Fatal(err)
	}
	f.slowCommit(slow) // its copy, token included, back in the store

	f.clock.Advance(48 * time.Hour)
	tok, err := f.token(session)
	if !errors.Is(err, core.ErrRevoked) {
		t.Fatalf("stale copy two days after Logout: token %t, err %v; want ErrRevoked", tok != nil, err)
	}
	if n := f.srv.RefreshCalls(); n != 0 {
		t.Fatalf("the logged-out grant was refreshed %d times", n)
	}
	f.checkNoReuse()
}
