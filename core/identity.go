package core

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
)

// identity is what a Launcher's login established about the session: the
// FHIR server (aud) and, from a validated id_token, the user. It lives in
// the session as JSON text under SessionKey + ".identity", next to the
// token, and goes with it.
type identity struct {
	Aud      string `json:"aud"`
	FHIRUser string `json:"fhir_user,omitempty"`
	Subject  string `json:"sub,omitempty"`
}

func (r *Refresher) identityKey() string { return r.cfg.SessionKey + ".identity" }

// identityOf returns the session's identity, if a Launcher stored one.
func (r *Refresher) identityOf(ctx context.Context) identity {
	var id identity
	if s := r.cfg.Sessions.GetString(ctx, r.identityKey()); s != "" {
		json.Unmarshal([]byte(s), &id)
	}
	return id
}

// IDTokenError is an id_token that failed validation at the callback: a
// bad signature, another issuer or audience, an expired token, a nonce
// that does not match. The token was not saved; the user must launch
// again. It matches ErrReauthRequired.
type IDTokenError struct {
	Reason string
}

func (e *IDTokenError) Error() string { return "smartrefresh: invalid id_token: " + e.Reason }

// Is makes an IDTokenError match ErrReauthRequired.
func (e *IDTokenError) Is(target error) bool { return target == ErrReauthRequired }

// idTokenAlgs are the signature algorithms accepted in an id_token: the
// asymmetric ones (never none, never HMAC with a shared secret).
var idTokenAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

// idTokenVerifier keeps one remote key set per jwks_uri, so that the keys
// are fetched once and again only for a kid they lack.
type idTokenVerifier struct {
	client *http.Client
	mu     sync.Mutex
	sets   map[string]*oidc.RemoteKeySet
}

func (v *idTokenVerifier) keySet(jwksURI string) *oidc.RemoteKeySet {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ks, ok := v.sets[jwksURI]; ok {
		return ks
	}
	if v.sets == nil {
		v.sets = map[string]*oidc.RemoteKeySet{}
	}
	ks := oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), v.client), jwksURI)
	v.sets[jwksURI] = ks
	return ks
}

// identity validates the id_token of a login when the Launcher asks for
// openid, with the keys at the server's jwks_uri: signature, issuer (the
// SMART configuration's issuer, or aud when it names none), audience (the
// client id), expiry, and the launch's nonce when the token carries one.
// It returns the user's fhirUser as an absolute URL.
//
// A server whose SMART configuration names no jwks_uri cannot have its
// id_token validated: the login goes on without a user (FHIRUser empty),
// with a warning in the log.
func (l *Launcher) identity(ctx context.Context, p pendingLaunch, tok *Token) (identity, error) {
	id := identity{Aud: p.Aud}
	log := l.r.cfg.Logger
	if !l.openid {
		return id, nil
	}
	if tok.IDToken == "" {
		log.InfoContext(ctx, "smartrefresh: the token answer has no id_token: the session has no fhirUser")
		return id, nil
	}
	conf, err := l.disc.Discover(ctx, p.Aud)
	if err != nil {
		return id, err
	}
	if conf.JWKSURI == "" {
		log.WarnContext(ctx, "smartrefresh: the server publishes no jwks_uri, so its id_token cannot be validated: the session has no fhirUser", "aud", p.Aud)
		return id, nil
	}
	issuer := conf.Issuer
	if issuer == "" {
		issuer = p.Aud
	}
	verifier := oidc.NewVerifier(issuer, l.ids.keySet(conf.JWKSURI), &oidc.Config{
		ClientID:             l.r.cfg.ClientID,
		SupportedSigningAlgs: idTokenAlgs,
		Now:                  l.r.cfg.Now,
	})
	sent := secrets{tok.IDToken, tok.AccessToken, tok.RefreshToken}
	idt, err := verifier.Verify(ctx, tok.IDToken)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return id, &IDTokenError{Reason: "expired at " + expired.Expiry.UTC().Format("2006-01-02T15:04:05Z")}
		}
		return id, &IDTokenError{Reason: limit(sent.scrub(err.Error()), 200)}
	}
	// OIDC Core 3.1.3.7 step 11: the launch sent a nonce, so the id_token
	// must carry it (else a code stolen from a server that skips PKCE
	// logs the thief in).
	if p.Nonce != "" && (idt.Nonce == "" || !equalSecret(idt.Nonce, p.Nonce)) {
		return id, &IDTokenError{Reason: "its nonce is missing or not the launch's"}
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
		AZP      any    `json:"azp"`
	}
	if err := idt.Claims(&claims); err != nil {
		return id, &IDTokenError{Reason: "its claims cannot be read"}
	}
	// OIDC Core 3.1.3.7 steps 4 and 5: an azp must be the client id.
	if claims.AZP != nil && claims.AZP != l.r.cfg.ClientID {
		return id, &IDTokenError{Reason: "its azp (authorized party) is not this client"}
	}
	id.Subject = limit(idt.Subject, 256)
	if user, ok := resolveFHIRUser(p.Aud, issuer, claims.FHIRUser); ok {
		id.FHIRUser = user
	} else {
		log.WarnContext(ctx, "smartrefresh: ignoring an fhirUser claim that is not a FHIR resource URL under the FHIR base or on the issuer's host", "aud", p.Aud)
	}
	return id, nil
}

// resolveFHIRUser returns the fhirUser claim as an absolute URL, if it
// names a resource of the FHIR server the token is for: relative to aud
// ("Practitioner/123" at https://ehr.example/fhir is
// https://ehr.example/fhir/Practitioner/123), or absolute under aud or on
// the issuer's origin (where some servers keep their users), with its
// scheme and host in lower case. Anything else
// is refused: another host, a path beside aud's, a query or fragment, an
// empty, "." or ".." segment, and any percent-escape (a FHIR reference
// needs none, and "%2e%2e" would be ".." once decoded).
func resolveFHIRUser(aud, issuer, claim string) (string, bool) {
	if claim == "" {
		return "", true
	}
	if len(claim) > maxReturnTo {
		return "", false
	}
	for i := 0; i < len(claim); i++ {
		if c := claim[i]; c <= ' ' || c == 0x7f || c == '\\' || c == '%' || c == '?' || c == '#' {
			return "", false
		}
	}
	u, err := url.Parse(claim)
	if err != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.User != nil {
		return "", false
	}
	base, err := url.Parse(strings.TrimRight(aud, "/"))
	if err != nil {
		return "", false
	}
	var path string
	switch {
	case !u.IsAbs():
		if u.Host != "" || strings.HasPrefix(claim, "/") {
			return "", false
		}
		path = u.Path
	case sameOrigin(u, base) && strings.HasPrefix(u.Path, base.Path+"/"):
		path = strings.TrimPrefix(u.Path, base.Path+"/")
	default:
		iss, err := url.Parse(issuer)
		if err != nil || issuer == "" || !sameOrigin(u, iss) || !strings.HasPrefix(u.Path, "/") {
			return "", false
		}
		path = strings.TrimPrefix(u.Path, "/")
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
	}
	if !u.IsAbs() {
		return base.String() + "/" + claim, true
	}
	// Scheme and host are case-insensitive (RFC 3986 §6.2.2.1); kept in
	// lower case, the same user reads as the same string in every login.
	return u.Scheme + "://" + strings.ToLower(u.Host) + u.Path, true
}

// sameOrigin reports whether a and b have the same scheme, host and port,
// and a is http(s).
func sameOrigin(a, b *url.URL) bool {
	return (a.Scheme == "https" || a.Scheme == "http") && a.Scheme == b.Scheme && strings.EqualFold(a.Host, b.Host) && a.Host != ""
}
