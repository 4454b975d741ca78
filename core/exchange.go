package core

import (
	"context"
	"fmt"
	"io"
	"net/url"
)

// exchangeCode redeems an authorization code at the token endpoint
// (RFC 6749 section 4.1.3, with the PKCE verifier of RFC 7636), with the
// client authentication the Refresher is configured with. Like
// requestToken it sends the code exactly once: no retry, no other
// authentication method, no redirect followed.
func (r *Refresher) exchangeCode(ctx context.Context, code, verifier, redirectURI string) (*Token, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}
	req, sent, err := r.authRequest(ctx, r.cfg.TokenURL, form)
	if err != nil {
		return nil, err
	}
	sent = append(sent, code, verifier)
	resp, err := r.endpoints.Do(req)
	if err != nil {
		return nil, &transientError{err: sent.scrubErr(scrubURLError(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, &transientError{err: sent.scrubErr(fmt.Errorf("reading answer: %w", err))}
	}
	if len(body) > maxResponseBytes {
		return nil, &ResponseError{StatusCode: resp.StatusCode, ContentType: limit(sent.scrub(resp.Header.Get("Content-Type")), 64),
			Reason: "answer larger than 1 MiB"}
	}
	tok, err := ParseTokenResponse(resp.StatusCode, resp.Header, body, r.cfg.Now())
	if err != nil {
		return nil, sent.scrubAnswer(err, resp.StatusCode, resp.Header, body)
	}
	return tok, nil
}
