package core

import (
	"context"
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
	resp, body, sent, err := r.postGrant(ctx, form, code, verifier)
	if err != nil {
		return nil, err
	}
	tok, trailing, err := parseTokenResponse(resp.StatusCode, resp.Header, body, r.cfg.Now())
	r.logTrailing(ctx, "authorization_code", trailing)
	if err != nil {
		return nil, sent.scrubAnswer(err, resp.StatusCode, resp.Header, body)
	}
	return tok, nil
}
