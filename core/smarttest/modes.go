package smarttest

import (
	"fmt"
	"strings"
)

// Real authorization servers differ on a few points that RFC 6749, RFC 7009
// and SMART leave open. Each is an option, so that a test can mirror the
// server its app will meet. The zero value of each is the behaviour that
// finds more bugs in a client.

// AccessOnRefresh is what a refresh does to the access tokens issued earlier
// for the same grant.
type AccessOnRefresh int

const (
	// AccessRevokedOnRefresh, the default, revokes them: the pre-refresh
	// access token gets 401 at once, as on servers that keep one live
	// access token per grant and look tokens up on each call. A stale
	// session copy, a second replica or a request in flight during a
	// refresh then meets a 401 that a client must survive without sending
	// a refresh token twice.
	AccessRevokedOnRefresh AccessOnRefresh = iota
	// AccessKeptOnRefresh keeps them valid until they expire, as on servers
	// whose access tokens are self-contained (JWTs checked only by their
	// signature and exp).
	AccessKeptOnRefresh
)

func (m AccessOnRefresh) String() string {
	switch m {
	case AccessRevokedOnRefresh:
		return "access revoked on refresh"
	case AccessKeptOnRefresh:
		return "access kept on refresh"
	}
	return fmt.Sprintf("AccessOnRefresh(%d)", int(m))
}

// RotatedRevocation is what the revocation endpoints do with a refresh token
// that has already been rotated away, or an access token a refresh already
// revoked: a token that no longer works.
type RotatedRevocation int

const (
	// RevokeRotatedNothing, the default, does nothing and answers 200, as
	// RFC 7009 section 2.2 allows and as servers that forget rotated tokens
	// do. A Logout that revokes a stale copy of the token then leaves the
	// grant alive, which the test can see (the current tokens still work).
	RevokeRotatedNothing RotatedRevocation = iota
	// RevokeRotatedGrant revokes the whole grant, current tokens included,
	// as servers that keep the chain of rotated tokens do.
	RevokeRotatedGrant
)

func (m RotatedRevocation) String() string {
	switch m {
	case RevokeRotatedNothing:
		return "revoking a rotated token does nothing"
	case RevokeRotatedGrant:
		return "revoking a rotated token revokes the grant"
	}
	return fmt.Sprintf("RotatedRevocation(%d)", int(m))
}

// PKCEFailure is what a code exchange with a wrong or missing code_verifier
// does to the authorization code.
type PKCEFailure int

const (
	// PKCEFailureBurnsCode, the default, makes the code unusable, as servers
	// that consume a code on its first presentation do: a client that
	// retries an exchange after sending the wrong verifier gets
	// invalid_grant again.
	PKCEFailureBurnsCode PKCEFailure = iota
	// PKCEFailureKeepsCode leaves the code usable until it expires or is
	// exchanged with the right verifier.
	PKCEFailureKeepsCode
)

func (m PKCEFailure) String() string {
	switch m {
	case PKCEFailureBurnsCode:
		return "failed PKCE burns the code"
	case PKCEFailureKeepsCode:
		return "failed PKCE keeps the code"
	}
	return fmt.Sprintf("PKCEFailure(%d)", int(m))
}

// validTokenType reports whether t is a spelling of Bearer.
func validTokenType(t string) bool { return strings.EqualFold(t, "Bearer") }
