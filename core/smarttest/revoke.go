package smarttest

import "net/http"

// serveRevoke is the revocation endpoint (RFC 7009). The client
// authenticates as at the token endpoint. Revoking an access or refresh
// token revokes its whole grant; unknown tokens are answered 200 too.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
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
