package core

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
)

// LaunchError is the answer of LaunchHandler or CallbackHandler to a launch
// that cannot go on: the HTTP status, an error code and a description a
// user can act on. Its codes are invalid_request, invalid_issuer,
// invalid_return_to, invalid_state, state_used, state_expired,
// session_missing, the authorization server's own (access_denied, …),
// token_exchange_failed, invalid_id_token, temporarily_unavailable and
// server_error. Err, when set, is the cause (never holding a token or a
// secret).
type LaunchError struct {
	Status      int
	Code        string
	Description string
	Err         error
}

func (e *LaunchError) Error() string {
	s := "smartrefresh: launch: " + e.Code + ": " + e.Description
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *LaunchError) Unwrap() error { return e.Err }

// launchErrorFrom turns an error of the Refresher, the discovery or the
// id_token validation into the answer for the browser.
func launchErrorFrom(err error, doing string) *LaunchError {
	var (
		le *LaunchError
		ie *IDTokenError
		de *DiscoveryError
	)
	switch {
	case errors.As(err, &le):
		return le
	case errors.As(err, &ie):
		return &LaunchError{Status: http.StatusUnauthorized, Code: "invalid_id_token",
			Description: "the identity the authorization server sent could not be validated; launch the app again", Err: err}
	case errors.Is(err, ErrNoSession):
		return &LaunchError{Status: http.StatusInternalServerError, Code: "server_error",
			Description: "the launch routes must be behind the session manager's LoadAndSave", Err: err}
	case errors.As(err, &de) && errors.Is(err, ErrTransient):
		return &LaunchError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: "the FHIR server's SMART configuration could not be read; try again", Err: err}
	case errors.As(err, &de):
		return &LaunchError{Status: http.StatusInternalServerError, Code: "server_error",
			Description: "the FHIR server's SMART configuration cannot be used: " + de.Reason, Err: err}
	case errors.Is(err, ErrReauthRequired):
		return &LaunchError{Status: http.StatusBadRequest, Code: "token_exchange_failed",
			Description: "the authorization server did not accept the authorization code (it may have expired); launch the app again", Err: err}
	case errors.Is(err, ErrTransient):
		return &LaunchError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable",
			Description: "the authorization server could not be reached while " + doing + "; launch the app again", Err: err}
	}
	return &LaunchError{Status: http.StatusInternalServerError, Code: "server_error",
		Description: "the app is misconfigured (" + doing + " failed); see its log", Err: err}
}

// fail logs e and answers it: with LaunchConfig.ErrorHandler when set,
// else as JSON to API clients and as a page to browsers.
func (l *Launcher) fail(w http.ResponseWriter, req *http.Request, e *LaunchError) {
	log := l.r.cfg.Logger.InfoContext
	if e.Status >= 500 {
		log = l.r.cfg.Logger.ErrorContext
	}
	attrs := []any{"code", e.Code, "status", e.Status}
	if e.Err != nil {
		attrs = append(attrs, "error", e.Err)
	}
	log(req.Context(), "smartrefresh: launch failed", attrs...)
	if l.cfg.ErrorHandler != nil {
		l.cfg.ErrorHandler(w, req, e)
		return
	}
	setLaunchHeaders(w.Header(), frameAncestors(l.cfg.Issuers)) // launchheaders.go
	WriteLaunchError(w, req, e)
}

// WriteLaunchError answers e: JSON ({"error": code, "error_description":
// …}) when the request prefers JSON to HTML, otherwise a short HTML page
// with the description and a link back to the app.
func WriteLaunchError(w http.ResponseWriter, req *http.Request, e *LaunchError) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if h.Get("Content-Security-Policy") == "" {
		setLaunchHeaders(h, "'self'") // launchheaders.go
	}
	if wantsJSON(req) {
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(e.Status)
		json.NewEncoder(w).Encode(struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}{e.Code, e.Description})
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(e.Status)
	launchErrorPage.Execute(w, e)
}

// wantsJSON reports whether the request names JSON, and not HTML, in
// Accept.
func wantsJSON(req *http.Request) bool {
	accept := strings.ToLower(strings.Join(req.Header.Values("Accept"), ","))
	return strings.Contains(accept, "json") && !strings.Contains(accept, "text/html")
}

var launchErrorPage = template.Must(template.New("launch-error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Launch failed</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em">
<h1>The app could not be launched</h1>
<p id="description">{{.Description}}</p>
<p><small>Error code: <code id="code">{{.Code}}</code></small></p>
<p><a href="/">Back to the app</a></p>
</body></html>
`))
