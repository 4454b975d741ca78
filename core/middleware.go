package core

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
)

// Attach returns a copy of ctx carrying a valid token for its session (see
// Token), for TokenFromContext to find.
func (r *Refresher) Attach(ctx context.Context) (context.Context, error) {
	tok, err := r.Token(ctx)
	if err != nil {
		return ctx, err
	}
	return NewContext(ctx, tok), nil
}

// AttachRequest is Attach for the launch req names (RequestLaunch: the
// X-SMART-Launch header or the smart_launch query parameter; else the one
// req's context names; else the session's most recent launch). The context
// it returns, derived from req's, carries that launch's valid token for
// TokenFromContext, and names the launch for the request's later calls of
// Token, Client and Info. It is the one call the middleware adapters make
// per request. A launch the session does not hold is ErrLaunchGone.
func (r *Refresher) AttachRequest(req *http.Request) (context.Context, error) {
	ctx := req.Context()
	name := RequestLaunch(req)
	if name == "" {
		name = launchOf(ctx)
	}
	tok, s, err := r.tokenOf(ctx, name)
	switch {
	case err != nil:
		return ctx, err
	case s.id == "":
		return NewContext(ctx, tok), nil
	case s.entry.att != nil && s.entry.att.tok == tok:
		return context.WithValue(ctx, tokenKey{}, s.entry.att), nil
	}
	return context.WithValue(ctx, tokenKey{}, &attachment{tok: tok, launch: s.id}), nil
}

// statusCode is the HTTP status of the answer to err: 403 for
// ErrTokenRejected, 401 for ErrReauthRequired, 503 for ErrTransient and for a request cancelled while
// waiting, 500 otherwise.
func statusCode(err error) int {
	switch {
	case errors.Is(err, ErrTokenRejected):
		return http.StatusForbidden
	case errors.Is(err, ErrReauthRequired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrTransient), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON body of the default error answer.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// ErrorResponse returns the status and JSON body of the default answer to
// err, for an app that writes its answers its own way (Gin's c.JSON, Echo's
// c.JSON): 401 reauth_required for ErrReauthRequired (the session ended),
// 403 token_rejected for ErrTokenRejected (the FHIR server refuses the
// tokens the token endpoint issues: a page should say so, not retry or
// log in again in a loop), 503 for ErrTransient and for a request
// cancelled while waiting, 500 otherwise. It never includes details
// of the token endpoint's answer. Add RetryAfter's hint to a 503.
func ErrorResponse(err error) (int, ErrorBody) {
	status := statusCode(err)
	switch status {
	case http.StatusForbidden:
		return status, ErrorBody{"token_rejected", "the FHIR server refuses this app's tokens (not a network failure); launch the app again, or ask its administrator to check the app's access"}
	case http.StatusUnauthorized:
		return status, ErrorBody{"reauth_required", reauthReason(err)}
	case http.StatusServiceUnavailable:
		return status, ErrorBody{"temporarily_unavailable", "the token service is temporarily unavailable; try again"}
	}
	return status, ErrorBody{"server_error", "could not obtain a valid access token"}
}

func reauthReason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return "no token in session; launch or log in"
	case errors.Is(err, ErrNoRefreshToken):
		return "the access token expired and there is no refresh token; launch or log in again"
	case errors.Is(err, ErrLaunchGone):
		return "this page's launch has ended (logged out, or replaced by newer launches); launch again"
	case errors.Is(err, ErrRevoked):
		return "logged out; launch or log in again"
	}
	return "the authorization ended; launch or log in again"
}

// WriteError writes the default answer to err: ErrorResponse's status and
// JSON body, and Retry-After on a 503 when there is a hint. The net/http,
// Echo and Gin adapters all use it unless told otherwise. It has the shape
// of an error handler (the request is not used), so it can be passed
// wherever one is asked for, or wrapped by one.
func WriteError(w http.ResponseWriter, _ *http.Request, err error) {
	status, body := ErrorResponse(err)
	if d, ok := RetryAfter(err); ok && status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
