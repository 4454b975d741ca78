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
// authenticates as at the token endpoint. Revoking an access or refresh
// token revokes its whole grant; unknown tokens are answered 200 too.
func (s *Server) revoke7009(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if oerr := parseForm(r); oerr != nil {
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

// revokeToken revokes the grant of token, if any, and answers 200.
func (s *Server) revokeToken(w http.ResponseWriter, token string) {
	var g *grant
	s.mu.Lock()
	if a, ok := s.access[token]; ok {
		g = a.grant
	} else if t, ok := s.refresh[token]; ok {
		g = t.grant
	}
	revoked := g != nil && s.revoke(g)
	s.mu.Unlock()

	if revoked {
		s.logf("revoke: token %s: grant %d revoked", fingerprint(token), g.id)
	} else {
		s.logf("revoke: token %s: nothing to revoke", fingerprint(token))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
