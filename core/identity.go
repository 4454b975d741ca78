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
	if idt.Nonce != "" && !equalSecret(idt.Nonce, p.Nonce) {
		return id, &IDTokenError{Reason: "its nonce is not the launch's"}
	}
	var claims struct {
		FHIRUser string `json:"fhirUser"`
	}
	if err := idt.Claims(&claims); err != nil {
		return id, &IDTokenError{Reason: "its claims cannot be read"}
	}
	id.Subject = limit(idt.Subject, 256)
	if user, ok := resolveFHIRUser(p.Aud, claims.FHIRUser); ok {
		id.FHIRUser = user
	} else {
		log.WarnContext(ctx, "smartrefresh: ignoring an fhirUser claim that is not a FHIR resource URL", "aud", p.Aud)
	}
	return id, nil
}

// resolveFHIRUser returns the fhirUser claim as an absolute URL: as it is
// when absolute (http or https), else relative to aud ("Practitioner/123"
// at https://ehr.example/fhir is https://ehr.example/fhir/Practitioner/123).
func resolveFHIRUser(aud, claim string) (string, bool) {
	if claim == "" {
		return "", true
	}
	if len(claim) > maxReturnTo {
		return "", false
	}
	for i := 0; i < len(claim); i++ {
		if c := claim[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(claim)
	if err != nil {
		return "", false
	}
	if u.IsAbs() {
		return claim, (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
	}
	if u.Host != "" || strings.HasPrefix(claim, "/") || strings.Contains(claim, "..") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return strings.TrimRight(aud, "/") + "/" + claim, true
}
