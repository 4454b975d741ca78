package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestLedgerOutlivesSessionLifetime: a stale session copy written back
// after a rotation is still recognised 48 h later when the session lives
// longer than the Lifetime the Refresher saw in New: a "remember me"
// deadline (scs SetDeadline, set after Save, whose RenewToken resets it),
// or a Lifetime raised after New. Before the fix the ledger forgot the
// redemption after the Lifetime read in New (24 h), and the stale copy's
// refresh token was sent again: the strict server revoked the grant.
func TestLedgerOutlivesSessionLifetime(t *testing.T) {
	const month = 30 * 24 * time.Hour
	tests := []struct {
		name   string
		before func(f *fixture)                      // after New, before the login
		after  func(f *fixture, ctx context.Context) // after Save, in the login request
	}{
		{name: "remember me: SetDeadline after Save", after: func(f *fixture, ctx context.Context) {
			f.sm.SetDeadline(ctx, time.Now().Add(month))
		}},
		{name: "Lifetime raised after New", before: func(f *fixture) { f.sm.Lifetime = month }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			if tt.before != nil {
				tt.before(f)
			}
			ctx := f.request("")
			if err := f.r.Save(ctx, f.srv.Grant()); err != nil {
				t.Fatal(err)
			}
			if tt.after != nil {
				tt.after(f, ctx)
			}
			f.end(ctx)
			session := f.sm.Token(ctx)

			stale := f.request(session) // a slow request loads the session
			f.clock.Advance(time.Hour)
			if _, err := f.token(session); err != nil { // rotates
				t.Fatal(err)
			}
			f.sm.Put(stale, "seen", true)
			f.end(stale) // and writes its stale copy back
			if f.srv.RefreshCalls() != 1 {
				t.Fatalf("%d token calls, want 1", f.srv.RefreshCalls())
			}

			f.clock.Advance(48 * time.Hour)
			if _, err := f.token(session); err != nil {
				t.Fatalf("48 h later: %v", err)
			}
			if c := f.srv.RefreshCalls(); c != 2 {
				t.Errorf("%d token calls, want 2", c)
			}
			f.checkNoReuse()
		})
	}
}

// TestLongPollKeepsWritingTheFirstCopyBack: a long request (a long poll)
// that loaded the session before each repair writes the grant's first
// token back after every rotation, 20 times over 20 hours. Each time, the
// next request repairs the session from the ledger and no refresh token is
// sent twice, though the first refresh token is 20 rotations old.
func TestLongPollKeepsWritingTheFirstCopyBack(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, _ := f.login()
	for i := range 20 {
		poll := f.request(session) // holds the first token after the first round
		f.clock.Advance(time.Hour)
		if _, err := f.token(session); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		f.sm.Put(poll, "polled", i)
		f.end(poll)
	}
	if c := f.srv.RefreshCalls(); c != 20 {
		t.Errorf("%d token calls, want 20", c)
	}
	f.checkNoReuse()
}

// TestSaveAgainKeepsStaleCopiesKnown: an app that saves the session's
// current token again (after changing something in it) must not make a
// copy from before that Save unrecognisable: the copy's refresh token,
// redeemed since, is not sent again.
func TestSaveAgainKeepsStaleCopiesKnown(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(map[bool]string{true: "the session's own token", false: "into a fresh session"}[keep], func(t *testing.T) {
			f := newFixture(t, smarttest.Options{})
			session, _ := f.login()
			f.clock.Advance(time.Hour)
			if _, err := f.token(session); err != nil { // RT0 → RT1
				t.Fatal(err)
			}
			stale := f.request(session) // holds RT1
			ctx := f.request(session)
			tok, err := f.r.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !keep {
				// The same token saved into a fresh session, then moved
				// back: a new grant name on the same chain.
				f.sm.Destroy(ctx)
				ctx = f.request("")
			}
			if err := f.r.Save(ctx, tok); err != nil {
				t.Fatal(err)
			}
			f.end(ctx)
			session = f.sm.Token(ctx)
			f.clock.Advance(time.Hour)
			if _, err := f.token(session); err != nil { // RT1 → RT2
				t.Fatal(err)
			}
			// The copy from before the second Save turns up in the session.
			v := f.sm.Get(stale, "smartrefresh.token")
			back := f.request(session)
			f.sm.Put(back, "smartrefresh.token", v)
			f.end(back)
			f.clock.Advance(10 * time.Minute)
			if _, err := f.token(session); err != nil {
				t.Fatal(err)
			}
			if c := f.srv.RefreshCalls(); c != 2 {
				t.Errorf("%d token calls, want 2", c)
			}
			f.checkNoReuse()
		})
	}
}

// TestOneTokenSavedIntoTwoSessions: the same token saved into two
// sessions (two grant names for one chain) is refreshed once; the second
// session gets the first one's result instead of sending the refresh
// token again.
func TestOneTokenSavedIntoTwoSessions(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	a, tok := f.login()
	ctx := f.request("")
	if err := f.r.Save(ctx, tok); err != nil {
		t.Fatal(err)
	}
	b := f.sm.Token(ctx)
	f.clock.Advance(time.Hour)
	for _, s := range []string{a, b} {
		if _, err := f.token(s); err != nil {
			t.Fatal(err)
		}
	}
	if c := f.srv.RefreshCalls(); c != 1 {
		t.Errorf("%d token calls, want 1", c)
	}
	f.checkNoReuse()
}
