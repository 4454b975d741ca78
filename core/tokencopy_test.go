package core_test

import (
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestTokenIsTheCallersCopy: the *Token that Token returns belongs to the
// caller. A handler that scrubs or edits it (clearing the refresh token it
// does not need, adding to Extra) changes nothing for the session's later
// requests, nor for the other requests of the grant: the Refresher's
// decoded-value cache and ledger keep their own copy.
func TestTokenIsTheCallersCopy(t *testing.T) {
	f := newFixture(t, smarttest.Options{})
	session, saved := f.login()

	scrub := func() {
		t.Helper()
		tok, err := f.token(session)
		if err != nil {
			t.Fatal(err)
		}
		tok.AccessToken, tok.RefreshToken = "", ""
		if tok.Extra == nil {
			t.Fatal("the token has no Extra")
		}
		tok.Extra["need_patient_banner"] = "tampered"
	}
	scrub()
	tok, err := f.token(session)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != saved.AccessToken || tok.RefreshToken != saved.RefreshToken ||
		tok.Extra["need_patient_banner"] != saved.Extra["need_patient_banner"] {
		t.Fatalf("a caller's edit of its token reached the next request: access %t, refresh %t, banner %v",
			tok.AccessToken == saved.AccessToken, tok.RefreshToken == saved.RefreshToken, tok.Extra["need_patient_banner"])
	}

	// Due for a refresh: the refresh still has the session's refresh token,
	// and the refreshed token is the caller's copy too.
	f.clock.Advance(59 * time.Minute)
	scrub()
	if f.srv.RefreshCalls() != 1 {
		t.Fatalf("refresh calls = %d, want 1", f.srv.RefreshCalls())
	}
	tok, err = f.token(session)
	if err != nil {
		t.Fatalf("after a caller scrubbed its refreshed token: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.AccessToken == saved.AccessToken {
		t.Fatal("a caller's edit of its refreshed token reached the next request")
	}
	f.checkNoReuse()
}
