package smarttest

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
)

// A grant is what one authorization produced. The access and refresh tokens
// issued from it share its fate: revoking the grant revokes them all.
type grant struct {
	id       int
	scope    string // the scope granted at authorization
	patient  string // the launch context patient (Options.Patient when empty)
	offline  bool   // whether refresh tokens are issued for it
	authTime time.Time
	revoked  bool
	access   []*accessToken // the access tokens not yet superseded by a refresh
}

// An accessToken is an access token issued for a grant.
type accessToken struct {
	grant      *grant
	expiry     time.Time
	expired    bool // set by ExpireAccessTokens
	superseded bool // revoked by a refresh of its grant (AccessRevokedOnRefresh)
}

// valid reports whether a may be used at now.
func (a *accessToken) valid(now time.Time) bool {
	return !a.grant.revoked && !a.expired && !a.superseded && now.Before(a.expiry)
}

// A refreshToken is a refresh token issued for a grant. Only the latest one
// of a grant is current; the ones before it are rotated.
type refreshToken struct {
	grant     *grant
	expiry    time.Time // zero means never
	rotated   bool
	rotatedAt time.Time     // when it was rotated
	next      *refreshToken // the token it was rotated for
}

// An authCode is an authorization code waiting to be exchanged.
type authCode struct {
	redirectURI string
	challenge   string
	scope       string
	patient     string    // from Options.LaunchPatients, if the launch named one
	nonce       string    // the OpenID Connect nonce, if any
	authTime    time.Time // when the user authorized
	expiry      time.Time
	grant       *grant // the grant issued from it, once exchanged
	burned      bool   // by a failed PKCE attempt (PKCEFailureBurnsCode)
}

// codeTTL is how long an authorization code may be exchanged.
const codeTTL = 60 * time.Second

// Grant issues a brand-new grant as if an authorization code flow had just
// completed, for tests that skip the browser. The token carries the access
// token, a rotating refresh token (unless NoRefreshToken or Scope lacks
// offline_access and online_access), an Expiry of Now()+AccessTokenTTL, Scope,
// an IDToken when Scope has openid, Patient, Encounter and the SMART launch
// context in Extra.
func (s *Server) Grant() *core.Token {
	now := s.now()
	s.mu.Lock()
	g := s.newGrant(s.opts.Scope, now)
	access := s.issueAccess(g, now)
	refresh := ""
	if g.offline {
		refresh = s.issueRefresh(g, now)
	}
	s.mu.Unlock()
	s.logf("grant %d issued by Grant: access %s, refresh %s", g.id, fingerprint(access), fingerprint(refresh))

	a := s.answer(access, refresh, g, g.scope, true)
	if err := s.sign(&a, now); err != nil {
		panic(err) // signing with a freshly made RSA key does not fail
	}
	return a.token(now.Add(s.opts.AccessTokenTTL))
}

// newGrant returns a new grant of scope, authorized at authTime. s.mu must
// be held.
func (s *Server) newGrant(scope string, authTime time.Time) *grant {
	s.grants++
	return &grant{
		id:       s.grants,
		scope:    scope,
		offline:  !s.opts.NoRefreshToken && offline(scope),
		authTime: authTime,
	}
}

// issueAccess returns a new access token for g. s.mu must be held.
func (s *Server) issueAccess(g *grant, now time.Time) string {
	t := newToken()
	a := &accessToken{grant: g, expiry: now.Add(s.opts.AccessTokenTTL)}
	s.access[t] = a
	if s.opts.AccessOnRefresh == AccessRevokedOnRefresh {
		g.access = append(g.access, a)
	}
	return t
}

// supersedeAccess revokes the access tokens issued for g so far, as a
// refresh does with AccessRevokedOnRefresh. s.mu must be held.
func (s *Server) supersedeAccess(g *grant) {
	for _, a := range g.access {
		a.superseded = true
	}
	g.access = nil
}

// issueRefresh returns a new refresh token for g. s.mu must be held.
func (s *Server) issueRefresh(g *grant, now time.Time) string {
	t, _ := s.issueRefreshToken(g, now)
	return t
}

// issueRefreshToken is issueRefresh, with the token's record. s.mu must be
// held.
func (s *Server) issueRefreshToken(g *grant, now time.Time) (string, *refreshToken) {
	t := newToken()
	r := &refreshToken{grant: g}
	if s.opts.RefreshTokenTTL > 0 {
		r.expiry = now.Add(s.opts.RefreshTokenTTL)
	}
	s.refresh[t] = r
	return t, r
}

// revoke revokes g and every token issued for it, and reports whether it
// was not revoked already. s.mu must be held.
func (s *Server) revoke(g *grant) bool {
	if g.revoked {
		return false
	}
	g.revoked = true
	s.revokedGrants++
	return true
}

// newToken returns a random, unguessable token: 32 bytes, base64url.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// offline reports whether scope asks for refresh tokens.
func offline(scope string) bool {
	f := strings.Fields(scope)
	return slices.Contains(f, "offline_access") || slices.Contains(f, "online_access")
}

// subset reports whether every scope in sub is in scope.
func subset(sub, scope string) bool {
	have := strings.Fields(scope)
	for _, s := range strings.Fields(sub) {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}
