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
// Token), for TokenFromContext to find. It is the one call the middleware
// adapters make per request.
func (r *Refresher) Attach(ctx context.Context) (context.Context, error) {
	tok, err := r.Token(ctx)
	if err != nil {
		return ctx, err
	}
	return NewContext(ctx, tok), nil
}

// statusCode is the HTTP status of the answer to err: 401 for
// ErrReauthRequired, 503 for ErrTransient and for a request cancelled while
// waiting, 500 otherwise.
func statusCode(err error) int {
	switch {
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
// c.JSON): 401 for ErrReauthRequired, 503 for ErrTransient and for a
// request cancelled while waiting, 500 otherwise. It never includes details
// of the token endpoint's answer. Add RetryAfter's hint to a 503.
func ErrorResponse(err error) (int, ErrorBody) {
	status := statusCode(err)
	switch status {
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
