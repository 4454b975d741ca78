package core

import "context"

// discardLogin revokes, when RevocationURL is set, the tokens of a login
// that was refused after its code was exchanged (a bad id_token): no
// session holds them, so nothing else would ever revoke them, and they
// would stay alive at the server.
func (r *Refresher) discardLogin(ctx context.Context, tok *Token) {
	if r.cfg.RevocationURL == "" || tok == nil {
		return
	}
	if err := r.revokeAtServer(context.WithoutCancel(ctx), tok); err != nil {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: revoking the tokens of a refused login failed", "error", err)
	}
}

// revokeReplaced revokes, when RevocationURL is set, the grant of old, the
// token a Save of a new login (tok) replaced in the session: the user has
// a new grant, and the old one would stay alive at the server. It is left
// alone when it shares a token value with the new login (a server that
// hands a new login the tokens of an earlier one: revoking those would end
// the new login too). A failed revocation is logged; the login stands.
func (r *Refresher) revokeReplaced(ctx context.Context, old *record, tok *Token) {
	if old == nil || r.cfg.RevocationURL == "" {
		return
	}
	for _, o := range []*record{old, r.newestKnown(old)} {
		if o.Token.AccessToken == tok.AccessToken || o.Token.RefreshToken != "" && o.Token.RefreshToken == tok.RefreshToken {
			return
		}
	}
	if err := r.revokeGrant(context.WithoutCancel(ctx), old); err != nil {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: revoking the grant a new login replaced failed", "error", err)
	}
}
