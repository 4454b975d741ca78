package core

import (
	"context"
	"io"
	"net/http"
)

// Client returns an HTTP client for calls to the FHIR server on behalf of
// the session of ctx. Each request carries "Authorization: Bearer" with the
// session's valid token. When the server answers 401 Unauthorized, the
// client refreshes the token once (or picks up the one another request
// already refreshed) and replays the request once, provided its body can be
// replayed (it has none, or GetBody is set, as http.NewRequest does for
// in-memory bodies); otherwise the 401 is returned as it came.
//
// When no valid token can be had, before the request or after a 401, the
// request fails with the refresh error (wrapped in a *url.Error by
// http.Client), so errors.Is(err, ErrReauthRequired) works on it.
//
// The token goes only over https (or plain http to loopback) and, when
// Config.FHIRBaseURLs is set, only to URLs under one of them; other requests
// fail with a *DestinationError without being sent. A redirect keeps the
// token only when it stays on the origin of the app's request and is
// allowed by the same rules; otherwise it is followed without the token.
//
// A FHIR request is bounded by its own context and by HTTPClient.Timeout,
// not by RefreshTimeout: build requests with http.NewRequestWithContext and
// the incoming request's context (Get and Post use context.Background), or
// set HTTPClient.Timeout.
func (r *Refresher) Client(ctx context.Context) *http.Client {
	base := r.cfg.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{
		Transport:     &transport{r: r, session: ctx, base: base},
		CheckRedirect: r.cfg.HTTPClient.CheckRedirect,
		Jar:           r.cfg.HTTPClient.Jar,
		Timeout:       r.cfg.HTTPClient.Timeout,
	}
}

// transport attaches the session's token and handles a 401 once.
type transport struct {
	r       *Refresher
	session context.Context
	base    http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	attach, err := t.r.attachToken(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if !attach {
		return t.base.RoundTrip(req)
	}
	tok, err := t.r.Token(t.session)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(authorize(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return resp, nil
	}
	next, err := t.r.refreshAfter401(t.session, tok)
	if err != nil {
		drain(resp)
		return nil, err
	}
	retry := authorize(req, next)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	drain(resp)
	return t.base.RoundTrip(retry)
}

// authorize returns a copy of req carrying tok. A RoundTripper must not
// modify the request it was given.
func authorize(req *http.Request, tok *Token) *http.Request {
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
	return out
}

// drain reads a little of resp's body, so the connection can be reused, and
// closes it.
func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
