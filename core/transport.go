package core

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// Client returns an HTTP client for calls to the FHIR server on behalf of
// the session of ctx. Each request carries "Authorization: Bearer" with the
// session's valid token. When the server answers 401 Unauthorized, the
// client refreshes the token once (or picks up the one another request
// already refreshed; concurrent 401s share one refresh) and replays the
// request once, provided its body can be replayed (it has none, or GetBody
// is set, as http.NewRequest does for in-memory bodies). A request whose
// body cannot be replayed (an io.Pipe, an io.NopCloser: streamed uploads)
// still refreshes the token, and then gets the 401 as it came: send it
// again, and it goes with the new token.
//
// A 401 to a token that a 401-triggered refresh obtained less than
// TokenRejectedCoolDown ago, and that the FHIR server has not accepted
// since (or rejected when the request was replayed with it, whatever other
// requests with it got), fails with a *TokenRejectedError (ErrTokenRejected) instead of
// refreshing again: the FHIR server rejects fresh tokens, and every refresh
// would get the same answer.
//
// A 401 to a session without a refresh token whose access token is still
// valid is passed through as it came, and the session kept: until the
// token expires, or until the FHIR server has rejected every request with
// it for TokenRejectedCoolDown (then ErrNoRefreshToken).
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
	// owned: the requests are this transport's to change (the FHIR proxy's
	// outbound requests, made for one round trip), so the token is set on
	// them instead of on a copy.
	owned bool
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
	resp, err := t.base.RoundTrip(t.authorize(req, tok))
	if err != nil {
		return resp, withoutToken(err, tok.AccessToken)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.r.accepted(tok.AccessToken)
		return resp, nil
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	next, err := t.r.refreshAfter401(t.session, tok, resp.Header.Get("WWW-Authenticate"))
	if err == errPassThrough401 {
		return resp, nil // a valid token without a refresh token: see unrenewable
	}
	if !replayable && !errors.Is(err, ErrTokenRejected) {
		// The body is spent and cannot be sent again: the 401 goes back
		// as it came, and the next request of the session goes with the
		// token refreshed here (or gets the refresh error).
		return resp, nil
	}
	if err != nil {
		drain(resp)
		return nil, err
	}
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	drain(resp) // before req is touched again: the round trip is over
	retry := t.authorize(req, next)
	if body != nil {
		retry.Body = body
	}
	resp, err = t.base.RoundTrip(retry)
	switch {
	case err != nil:
		err = withoutToken(err, next.AccessToken)
	case resp.StatusCode != http.StatusUnauthorized:
		t.r.accepted(next.AccessToken)
	default:
		t.r.probation.replayRejected(next.AccessToken)
	}
	return resp, err
}

// accepted records that the FHIR server accepted the access token at.
func (r *Refresher) accepted(at string) {
	r.probation.accepted(at)
	r.unrenewable.accepted(at)
}

// authorize returns req carrying tok: a copy of it, since a RoundTripper
// must not modify the request it was given, unless the transport owns its
// requests.
func (t *transport) authorize(req *http.Request, tok *Token) *http.Request {
	out := req
	if !t.owned {
		out = req.Clone(req.Context())
	} else if req.Body != nil && req.Body != http.NoBody && req.GetBody != nil {
		out = new(http.Request) // a replay gets a body of its own
		*out = *req
	}
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

// withoutToken returns err, the error of a round trip that carried the
// access token, with every form of the token (tokenForms) in its text
// masked: net/http quotes an answer's malformed lines in its errors
// ("malformed MIME header line: ..."), and a careless server may have
// echoed the request's Authorization header there, on its way to a log.
func withoutToken(err error, token string) error {
	msg := err.Error()
	if masked := newTokenForms(token).mask(msg); masked != msg {
		return &maskedError{err: err, msg: masked}
	}
	return err
}

// maskedError is an error whose text held the token. It is what err is
// (errors.Is), but does not unwrap to it, whose text still holds it.
type maskedError struct {
	err error
	msg string
}

func (e *maskedError) Error() string        { return e.msg }
func (e *maskedError) Is(target error) bool { return errors.Is(e.err, target) }
