package smarttest

import "net/http"

// serveRevoke counts a revocation request, then hands it to the revoke
// hook, if any, or straight to revoke or cancel.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.revokeCalls++
	h := s.revokeHook
	s.mu.Unlock()

	next := http.HandlerFunc(s.revoke7009)
	if r.Method == http.MethodGet {
		next = s.cancel
	}
	if h != nil {
		h(w, r, next)
		return
	}
	next(w, r)
}

// revoke7009 is the revocation endpoint (RFC 7009). The client
// authenticates as at the token endpoint. Revoking a live access or refresh
// token revokes its whole grant; a rotated one does what
// Options.RevokeRotated says; unknown tokens are answered 200 too.
func (s *Server) revoke7009(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if oerr := parseForm(r); oerr != nil {
		s.logf("revoke: %s: %s", oerr.Code, oerr.Description)
		writeError(w, oerr)
		return
	}
	if noClientCredentials(r) {
		oerr := invalidRequest("client authentication is required: no client credentials were sent")
		s.logf("revoke: %s: %s", oerr.Code, oerr.Description)
		writeError(w, oerr)
		return
	}
	if why := s.authenticateClient(r); why != "" {
		s.logf("revoke: invalid_client: %s", why)
		s.clientError(w, r, why)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, invalidRequest("token is required"))
		return
	}
	s.revokeToken(w, token)
}

// cancel is the revocation endpoint as Health Gorilla documents it:
// GET /oauth/cancel?token=…, without client authentication. Like
// revoke7009 it revokes the token's whole grant and answers 200 to unknown
// tokens too.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	token, ok := single(r.URL.Query(), "token")
	if !ok || token == "" {
		writeError(w, invalidRequest("exactly one token query parameter is required"))
		return
	}
	s.revokeToken(w, token)
}

// revokeToken revokes the grant of token, if any, and answers 200. A token
// that a refresh already replaced (a rotated refresh token, an access token
// revoked by a refresh) revokes its grant only with RevokeRotatedGrant.
func (s *Server) revokeToken(w http.ResponseWriter, token string) {
	var (
		g    *grant
		dead bool
	)
	s.mu.Lock()
	if a, ok := s.access[token]; ok {
		g, dead = a.grant, a.superseded
	} else if t, ok := s.refresh[token]; ok {
		g, dead = t.grant, t.rotated
	}
	if dead && s.opts.RevokeRotated == RevokeRotatedNothing {
		g = nil
	}
	revoked := g != nil && s.revoke(g)
	s.mu.Unlock()

	switch {
	case revoked:
		s.logf("revoke: token %s: grant %d revoked", fingerprint(token), g.id)
	case dead && g == nil:
		s.logf("revoke: token %s: already replaced by a refresh; nothing revoked (RevokeRotatedNothing)", fingerprint(token))
	default:
		s.logf("revoke: token %s: nothing to revoke", fingerprint(token))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
