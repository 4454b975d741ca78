package core

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The error classes. Every error the Refresher returns for a failed refresh
// matches (errors.Is) exactly one of ErrReauthRequired, ErrTransient and
// ErrMisconfigured; the specific errors below wrap their class.
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
	ErrInvalidToken = errors.New("smartrefresh: token has no access token")
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
	case e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusMethodNotAllowed:
		return "check TokenURL"
	}
	return ""
}

// Is reports the class of the error: invalid_grant is ErrReauthRequired,
// 429 and 5xx are ErrTransient, everything else is ErrMisconfigured.
func (e *TokenError) Is(target error) bool {
	switch target {
	case ErrReauthRequired:
		return e.class() == ErrReauthRequired
	case ErrTransient:
		return e.class() == ErrTransient
	case ErrMisconfigured:
		return e.class() == ErrMisconfigured
	}
	return false
}

func (e *TokenError) class() error {
	switch {
	case e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500:
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
}

func (e *ResponseError) Error() string {
	return "smartrefresh: unusable token response (status " + strconv.Itoa(e.StatusCode) +
		", Content-Type " + strconv.Quote(e.ContentType) + "): " + e.Reason
}

// Is makes a ResponseError match ErrTransient: a broken answer may be a
// passing fault of a proxy or the server, and the stored token is kept.
func (e *ResponseError) Is(target error) bool { return target == ErrTransient }

// RetryAfter returns how long the token endpoint asked to wait before the
// next attempt, if err carries such a hint.
func RetryAfter(err error) (time.Duration, bool) {
	var te *TokenError
	if errors.As(err, &te) && te.RetryAfter > 0 {
		return te.RetryAfter, true
	}
	return 0, false
}
