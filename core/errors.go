package core

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The error classes. Every error the Refresher returns for a failed refresh
// matches (errors.Is) exactly one of ErrReauthRequired, ErrTransient and
// ErrMisconfigured; the specific errors below wrap their class. This is the
// one place the taxonomy is defined:
//
//	class              cause                                  session token   HTTP status
//	ErrReauthRequired  invalid_grant (refresh token expired,  removed and     401
//	                   revoked or reused), no token, no       committed
//	                   refresh token, corrupt session value
//	ErrTransient       network error, timeout, 408, 429, 5xx, kept            503 (with the
//	                   broken answer; ErrOutcomeUnknown when                  server's
//	                   the request may have been processed                    Retry-After)
//	ErrMisconfigured   invalid_client, unauthorized_client,   kept            500
//	                   invalid_scope, 404 at TokenURL, bad
//	                   Config (*ConfigError), no scs session,
//	                   a URL the token must not go to
//
// ErrReauthRequired: the app sends the user to launch or log in again
// (ErrorHandler does that for browser navigations). ErrTransient: the next
// request tries again; a refresh whose request certainly did not reach the
// server (connection refused, DNS or TLS failure, 429, 503 with
// Retry-After) is first
// retried within Config.RefreshTimeout (see RetryPolicy). ErrMisconfigured:
// the error names the setting to fix (*ConfigError.Field, or a hint such
// as "check ClientID, ClientSecret and AuthMethod" in *TokenError).
var (
	// ErrReauthRequired means the session has no usable token and the user
	// must authorize the app again (launch or log in). The token, if any,
	// has been removed from the session.
	ErrReauthRequired = errors.New("smartrefresh: re-authorization required")
	// ErrTransient means the token endpoint could not be reached or failed
	// in a way that may pass (network error, timeout, 429, 5xx). The stored
	// token is kept; a later request tries again.
	ErrTransient = errors.New("smartrefresh: temporary failure")
	// ErrMisconfigured means the token endpoint rejected the client or the
	// request in a way only a change of configuration can fix.
	ErrMisconfigured = errors.New("smartrefresh: misconfigured")
)

// ErrOutcomeUnknown is matched, besides ErrTransient, by a refresh whose
// request was sent but whose answer was lost or unusable: a timeout or a
// connection reset after the request went out, 500, 502, 504, or a broken
// answer. The server may have rotated the refresh token, so the request is
// not retried freely: sending the refresh token again could be the reuse
// that makes a strict server revoke the grant. It is resent exactly once,
// promptly (Config.ResendAfter), while a server's reuse grace window is
// open; this error means that resend was lost too (or was off). The stored
// token is kept, and the first request after the grant's backoff tries
// again with it, since the only other choice is to log the user out on
// every network blip. A server with a grace period for reuse then answers
// normally; a strict one answers invalid_grant, which ends cleanly in
// ErrReauthRequired, never in a silently broken session.
var ErrOutcomeUnknown = fmt.Errorf("%w: the token request was sent, but its outcome is unknown", ErrTransient)

// Specific errors, each wrapping its class.
var (
	// ErrNoToken: the session holds no token.
	ErrNoToken = fmt.Errorf("%w: no token in session", ErrReauthRequired)
	// ErrNoRefreshToken: the access token expired (or was rejected) and
	// there is no refresh token to renew it.
	ErrNoRefreshToken = fmt.Errorf("%w: access token expired and no refresh token", ErrReauthRequired)
	// ErrCorruptSession: the session value under the configured key is not
	// a token stored by this package. It has been removed.
	ErrCorruptSession = fmt.Errorf("%w: session value is not a smartrefresh token", ErrReauthRequired)
	// ErrNoSession: the context carries no scs session; wrap the handler
	// with the session manager's LoadAndSave.
	ErrNoSession = fmt.Errorf("%w: no session in context (wrap the handler with the scs SessionManager's LoadAndSave)", ErrMisconfigured)
	// ErrInvalidToken: a token given to Save has no access token.
	ErrInvalidToken = fmt.Errorf("%w: token has no access token", ErrMisconfigured)
	// ErrLaunchGone: the request names a launch (LaunchHeader,
	// LaunchParam) that the session does not hold, or no longer: dropped
	// for newer launches (Config.MaxLaunches), replaced by a new launch
	// for the same patient, logged out, or another session's. The page
	// must launch again; it never gets another launch's token.
	ErrLaunchGone = fmt.Errorf("%w: the launch the request names is not in the session", ErrReauthRequired)
	// ErrRevoked: Logout revoked the session's grant. A copy of the token
	// that turns up later (a stale session copy, a refresh that was in
	// flight) is removed instead of being used.
	ErrRevoked = fmt.Errorf("%w: logged out (the grant was revoked)", ErrReauthRequired)
)

// ConfigError reports a Config field that New rejected.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return "smartrefresh: Config." + e.Field + " " + e.Reason
}

// Is makes a ConfigError match ErrMisconfigured.
func (e *ConfigError) Is(target error) bool { return target == ErrMisconfigured }

// TokenError is an error answer of the token endpoint. Code is the OAuth
// error code (RFC 6749 section 5.2) when the server sent one.
type TokenError struct {
	StatusCode  int
	Code        string
	Description string
	URI         string
	// ContentType is set when the answer was not a JSON error object.
	ContentType string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Snippet is the start of an answer that was not a JSON error object
	// (at most about 120 printable bytes), set by the Refresher with the
	// client secret, the refresh token and the client assertion it sent
	// replaced by [REDACTED]. It is empty when the body might carry a
	// token: a 2xx answer other than an HTML page, a form-encoded one, JSON
	// with a key naming a token or secret (decoded, whatever its escapes),
	// or text that names a token field once its escapes are undone.
	Snippet string
}

func (e *TokenError) Error() string {
	s := "smartrefresh: token endpoint answered " + strconv.Itoa(e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.ContentType != "" {
		s += " (non-JSON answer, Content-Type " + strconv.Quote(e.ContentType) + ")"
	}
	if e.Snippet != "" {
		s += ": " + strconv.Quote(e.Snippet)
	}
	if hint := e.hint(); hint != "" {
		s += "; " + hint
	}
	return s
}

func (e *TokenError) hint() string {
	switch {
	case e.Code == "invalid_client" || e.Code == "unauthorized_client":
		return "check ClientID, ClientSecret and AuthMethod"
	case e.Code == "invalid_scope":
		return "check Scope"
	case e.Code == "unsupported_grant_type":
		return "the client is not allowed the refresh_token grant; check the client registration"
	case e.Code == "" && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden):
		return "check TokenURL, ClientID and the client credentials"
	case e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusMethodNotAllowed:
		return "check TokenURL"
	case e.StatusCode >= 300 && e.StatusCode < 400:
		return "the endpoint redirected, and token requests never follow redirects; check TokenURL"
	}
	return ""
}

// Is reports the class of the error: invalid_grant is ErrReauthRequired,
// 408, 429, 5xx and the codes temporarily_unavailable and server_error
// (whatever the status, a 200 included) are ErrTransient, everything else
// is ErrMisconfigured.
func (e *TokenError) Is(target error) bool {
	switch target {
	case ErrReauthRequired:
		return e.class() == ErrReauthRequired
	case ErrTransient:
		return e.class() == ErrTransient
	case ErrMisconfigured:
		return e.class() == ErrMisconfigured
	case ErrOutcomeUnknown:
		return e.class() == ErrTransient && !e.refused()
	}
	return false
}

// refused reports whether the server declined the request without
// processing it: a 429, or a 503 with Retry-After. Any other 5xx may come
// after the request was processed, or from a gateway that lost the answer:
// proxies such as Envoy answer a bare 503 for an upstream reset after the
// request went through.
func (e *TokenError) refused() bool {
	return e.StatusCode == http.StatusTooManyRequests ||
		e.StatusCode == http.StatusServiceUnavailable && e.RetryAfter > 0
}

func (e *TokenError) class() error {
	switch {
	case e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500,
		e.Code == "temporarily_unavailable" || e.Code == "server_error":
		return ErrTransient
	case e.Code == "invalid_grant":
		return ErrReauthRequired
	}
	return ErrMisconfigured
}

// transientError is a failure to get an answer from the token endpoint.
type transientError struct{ err error }

func (e *transientError) Error() string {
	return "smartrefresh: token request failed: " + e.err.Error()
}
func (e *transientError) Unwrap() []error { return []error{ErrTransient, e.err} }

// ResponseError is a token endpoint answer that could not be used: a 2xx
// answer that is not a valid token response.
type ResponseError struct {
	StatusCode  int
	ContentType string
	Reason      string
	// Snippet is the start of the body, as in TokenError.
	Snippet string
}

func (e *ResponseError) Error() string {
	s := "smartrefresh: unusable token response (status " + strconv.Itoa(e.StatusCode) +
		", Content-Type " + strconv.Quote(e.ContentType) + "): " + e.Reason
	if e.Snippet != "" {
		s += ": " + strconv.Quote(e.Snippet)
	}
	return s
}

// Is makes a ResponseError match ErrTransient and ErrOutcomeUnknown: a
// broken answer may be a passing fault of a proxy or the server, and the
// stored token is kept; but the server may also have processed the request
// and rotated the refresh token, so it is not retried at once.
func (e *ResponseError) Is(target error) bool {
	return target == ErrTransient || target == ErrOutcomeUnknown
}

// AssertionError is a failure to sign the private_key_jwt client assertion,
// for example a KMS that could not be reached. No request was sent, so the
// refresh token was not used; the error matches ErrTransient and the stored
// token is kept.
type AssertionError struct {
	Err error
}

func (e *AssertionError) Error() string {
	return "smartrefresh: signing the client assertion failed: " + e.Err.Error()
}

func (e *AssertionError) Unwrap() []error { return []error{ErrTransient, e.Err} }

// RevocationError is a failed revocation of a token at Config.RevocationURL,
// returned by Logout after it removed the token from the session. It matches
// ErrTransient when the endpoint could not be reached or answered 429 or
// 5xx, and ErrMisconfigured otherwise.
type RevocationError struct {
	// TokenTypeHint is the kind of token whose revocation failed:
	// "refresh_token" or "access_token".
	TokenTypeHint string
	// StatusCode is the endpoint's answer; zero when there was none.
	StatusCode int
	// Code and Description are the OAuth error of a JSON error answer.
	Code        string
	Description string
	// ContentType and Snippet describe any other answer, as in TokenError.
	ContentType string
	Snippet     string
	// Err is the transport error when the endpoint could not be reached.
	Err error
}

func (e *RevocationError) Error() string {
	s := "smartrefresh: revoking the " + strings.ReplaceAll(e.TokenTypeHint, "_", " ") + " failed: "
	switch {
	case e.Err != nil:
		s += e.Err.Error()
	default:
		s += "revocation endpoint answered " + strconv.Itoa(e.StatusCode)
		if e.Code != "" {
			s += " " + e.Code
		}
		if e.Description != "" {
			s += ": " + e.Description
		}
		if e.ContentType != "" {
			s += " (Content-Type " + strconv.Quote(e.ContentType) + ")"
		}
		if e.Snippet != "" {
			s += ": " + strconv.Quote(e.Snippet)
		}
	}
	return s
}

// Is reports the class of the error: ErrTransient or ErrMisconfigured.
func (e *RevocationError) Is(target error) bool {
	transient := e.Err != nil || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
	switch target {
	case ErrTransient:
		return transient
	case ErrMisconfigured:
		return !transient
	}
	return false
}

func (e *RevocationError) Unwrap() error { return e.Err }

// ErrDiscovery is matched (errors.Is) by every *DiscoveryError.
var ErrDiscovery = errors.New("smartrefresh: SMART discovery failed")

// DiscoveryError is a SMART configuration that could not be fetched or
// used. Besides ErrDiscovery it matches ErrTransient when the server could
// not be reached or answered 429 or 5xx, and ErrMisconfigured otherwise.
type DiscoveryError struct {
	// URL is the smart-configuration document's URL, when known.
	URL string
	// StatusCode is the server's answer, zero when there was none.
	StatusCode int
	// Reason says what was wrong.
	Reason string
	// Err is the underlying error, if any.
	Err error

	transient bool // unreachable, timed out, 429 or 5xx
}

func (e *DiscoveryError) Error() string {
	s := "smartrefresh: SMART configuration"
	if e.URL != "" {
		s += " " + e.URL
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrDiscovery or the error's class.
func (e *DiscoveryError) Is(target error) bool {
	switch target {
	case ErrDiscovery:
		return true
	case ErrTransient:
		return e.transient
	case ErrMisconfigured:
		return !e.transient
	}
	return false
}

func (e *DiscoveryError) Unwrap() error { return e.Err }

// RetryAfter returns how long to wait before the next attempt, if err
// carries such a hint: the token endpoint's Retry-After, the
// *OverloadError of a refresh that found no free slot, or the
// *BackoffError of a grant whose last refresh failed.
func RetryAfter(err error) (time.Duration, bool) {
	var te *TokenError
	if errors.As(err, &te) && te.RetryAfter > 0 {
		return te.RetryAfter, true
	}
	var oe *OverloadError
	if errors.As(err, &oe) && oe.RetryAfter > 0 {
		return oe.RetryAfter, true
	}
	var be *BackoffError
	if errors.As(err, &be) && be.RetryAfter > 0 {
		return max(be.RetryAfter, time.Second), true
	}
	var bo *backingOff
	if errors.As(err, &bo) && bo.retryAfter > 0 {
		return max(bo.retryAfter, time.Second), true
	}
	return 0, false
}
