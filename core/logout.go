package core

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// RevocationStyle is the shape of the requests Logout sends to
// Config.RevocationURL.
type RevocationStyle int

const (
	// RevokeRFC7009 POSTs token=…&token_type_hint=… as a form, with the
	// client authentication of Config.AuthMethod (RFC 7009). The default.
	RevokeRFC7009 RevocationStyle = iota
	// RevokeQueryGET sends GET {RevocationURL}?token=…, without client
	// authentication, as Health Gorilla documents for /oauth/cancel.
	RevokeQueryGET
)

// String returns the style's name.
func (s RevocationStyle) String() string {
	switch s {
	case RevokeRFC7009:
		return "RevokeRFC7009"
	case RevokeQueryGET:
		return "RevokeQueryGET"
	}
	return "RevocationStyle(" + strconv.Itoa(int(s)) + ")"
}

// Logout ends the SMART authorization of the session of ctx: every launch
// it holds (see Launcher; LogoutLaunch ends one). For each, it revokes the
// grant's refresh token, then its access token, at Config.RevocationURL,
// then removes the launch from the session and commits the session. The
// token is removed always, even when revocation failed; a failed
// revocation is then returned as a *RevocationError (matching ErrTransient
// or ErrMisconfigured). With no RevocationURL configured Logout only
// removes the tokens. With no token in the session there is nothing to do
// and Logout returns nil.
//
// Logout revokes each grant's newest tokens, as known to this process and,
// with a Config.Coordinator, to every replica (a session copy may hold a
// refresh token rotated since, which a server may ignore: RFC 7009 lets it
// answer 200 to an invalid token). If a refresh of the grant is in flight,
// here or on another replica, Logout waits for it (at most RefreshTimeout)
// and revokes what it produced. From then on this Refresher treats every
// token of the grant as revoked: a refresh that was waiting, or a stale
// copy of the session written back later by a slower request, does not
// bring the token back; the request that finds it removes it and gets
// ErrRevoked. Other processes learn it from the server, whose refresh
// answers invalid_grant once the grant is revoked. If the Coordinator
// fails, Logout revokes the newest token it knows and returns a
// *CoordinatorError (ErrTransient) with the result: the grant may still be
// alive.
//
// The revocation requests run on a context detached from ctx, each bounded
// by RefreshTimeout, so a user who closes the page does not leave the
// grant alive. Logout does not renew the scs session token or touch other
// session data: the app decides that (sessions.Destroy or RenewToken).
func (r *Refresher) Logout(ctx context.Context) error {
	if _, ok := r.get(ctx); !ok {
		return noSession(ctx)
	}
	// The launches of the request's copy, and those the store holds now
	// (completed in another tab since this request loaded).
	ids := map[string]bool{}
	var errs []error
	for _, src := range []context.Context{ctx, r.freshCopy(ctx)} {
		if src == nil {
			continue
		}
		slots, _ := r.launchesOf(src)
		for _, s := range slots {
			if ids[s.id] {
				continue
			}
			ids[s.id] = true
			errs = append(errs, r.logoutSlot(WithLaunch(ctx, s.id), WithLaunch(src, s.id), s.id == "", false))
		}
	}
	return errors.Join(errs...)
}

// LogoutLaunch ends the launch ctx names (WithLaunch, LaunchContext; the
// most recent one when it names none), as Logout does for every launch:
// its grant is revoked and it is removed from the session, whose other
// launches keep working. A grant whose token values another launch of the
// session holds too (some servers hand a new login of the same user the
// tokens of the last) is left to that launch: the launch is removed, the
// grant is revoked by the Logout or LogoutLaunch that ends the last of
// them. A launch the session no longer holds has nothing
// to end: LogoutLaunch returns nil.
func (r *Refresher) LogoutLaunch(ctx context.Context) error {
	return r.logoutSlot(ctx, ctx, false, true)
}

// logoutSlot ends the launch ctx names, as the session src (ctx, or the
// store's copy of its session) holds it; legacy: the launch has no id, and
// must still have none in src. With one, only that launch ends: a grant
// whose token values another launch of the session holds too (a server
// that hands a new login of the same user the tokens of the last) is not
// revoked, as a login leaves such a grant alone (revokeDropped), or that
// launch would end with it.
func (r *Refresher) logoutSlot(ctx, src context.Context, legacy, one bool) error {
	rec, s, err := r.load(src, launchOf(src))
	if errors.Is(err, ErrNoSession) || errors.Is(err, ErrTransient) {
		// No session, or a token this process cannot read (sealed with a
		// key it does not have): nothing was revoked or removed.
		return err
	}
	if err != nil || legacy && s.id != "" {
		// No token, or one already revoked or corrupt (load removed it).
		return nil
	}
	var revErr error
	if !one || !r.sharedByAnother(ctx, s, rec) {
		revErr = r.revokeGrant(context.WithoutCancel(ctx), rec)
	}
	own, _ := r.slotValue(src, s)
	rmErr := r.removeForLogout(ctx, s, own)
	if revErr != nil {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: logged out, but revocation failed", "error", revErr)
	} else {
		r.cfg.Logger.DebugContext(ctx, "smartrefresh: logged out")
	}
	return errors.Join(revErr, rmErr)
}

// sharedByAnother reports whether a launch of the session of ctx other
// than s, in the request's copy or in the store's, shares a token value
// with rec or with the newest token of its grant known here.
func (r *Refresher) sharedByAnother(ctx context.Context, s slot, rec *record) bool {
	mine := []*record{rec, r.newestKnown(rec)}
	for _, src := range []context.Context{ctx, r.freshCopy(ctx)} {
		if src == nil {
			continue
		}
		slots, vals := r.launchesOf(src)
		for i, o := range slots {
			if o.id == s.id {
				continue
			}
			other, err := r.decodeSessionRecord(vals[i])
			if err != nil {
				continue
			}
			for _, m := range mine {
				if sharesToken(r, other, &m.Token) {
					return true
				}
			}
		}
	}
	return false
}

// freshCopy returns the session of ctx as it is in the store now, or nil.
func (r *Refresher) freshCopy(ctx context.Context) context.Context {
	sm := r.cfg.Sessions
	token := sm.Token(ctx)
	if token == "" {
		return nil
	}
	fresh, err := sm.Load(context.Background(), token)
	if err != nil || sm.Token(fresh) == "" {
		return nil
	}
	return fresh
}

// revokeGrant marks the grant of rec revoked in the ledger and revokes its
// newest tokens at the server. The newest refresh token is the one no
// process has redeemed: revokeGrant follows the grant from rec through this
// process's ledger and, with a Coordinator, through the records of every
// replica. Revoking an older one would not do: RFC 7009 lets a server
// answer 200 to an invalid token and do nothing, leaving the grant alive.
//
// The revocation runs in the flight of the newest refresh token, holding
// its Coordinator lock, so that no refresh of it runs at the same time in
// any process: a refresh in flight is waited for, and inside the flight
// the look-up is made again, so that a refresh that finished in between is
// followed rather than raced. A refresh that starts meanwhile in this
// process joins the flight and gets ErrRevoked.
//
// When the Coordinator fails, the newest token known here is revoked all
// the same, and a *CoordinatorError says the grant may still be alive.
func (r *Refresher) revokeGrant(ctx context.Context, rec *record) error {
	cur := rec
	for range maxChain {
		now := r.cfg.Now()
		if r.ledger.isRevokedRecord(cur, now) != nil {
			return nil // another Logout of the grant got here first
		}
		if cur.Token.RefreshToken == "" {
			r.ledger.revoke(now, r.retainUntil(ctx), ErrRevoked, rec, cur)
			return r.revokeAtServer(ctx, &cur.Token)
		}
		fp := fingerprintOf(cur.Token.RefreshToken)
		lctx, cancel := context.WithTimeout(ctx, r.cfg.RefreshTimeout)
		next, err := r.newest(lctx, cur, fp)
		cancel()
		if err != nil {
			return r.revokeBestEffort(ctx, rec, cur, err)
		}
		if next != nil {
			cur = next
			continue
		}
		if r.lookedUp != nil {
			r.lookedUp()
		}
		var (
			ran, followed bool
			revErr        error
		)
		v, err, _ := r.flights.Do(string(fp[:]), func() (any, error) {
			ran = true
			lctx, cancel := context.WithTimeout(ctx, r.cfg.RefreshTimeout)
			defer cancel()
			unlock, err := r.lockShared(lctx, fp)
			if err != nil {
				revErr = r.revokeBestEffort(ctx, rec, cur, err)
				return nil, ErrRevoked
			}
			defer unlock()
			// A refresh of fp that finished since the look-up, here or on
			// another replica, redeemed it: follow it (a refresh that
			// joined this flight gets ErrRevoked).
			next, err := r.newest(lctx, cur, fp)
			if err != nil {
				revErr = r.revokeBestEffort(ctx, rec, cur, err)
				return nil, ErrRevoked
			}
			if next != nil {
				cur, followed = next, true
				return nil, ErrRevoked
			}
			r.ledger.revoke(r.cfg.Now(), r.retainUntil(ctx), ErrRevoked, rec, cur)
			revErr = r.revokeAtServer(ctx, &cur.Token)
			return nil, ErrRevoked
		})
		if ran && !followed {
			return revErr
		}
		if !ran {
			// A refresh of cur was in flight; revoke what it produced.
			if next, ok := v.(*record); ok && err == nil {
				cur = next
			}
		}
	}
	// Give up following the grant; still never use these tokens again.
	r.ledger.revoke(r.cfg.Now(), r.retainUntil(ctx), ErrRevoked, rec, cur)
	return r.revokeAtServer(ctx, &cur.Token)
}

// revokeBestEffort revokes cur, the newest token of rec's grant known
// here, after the Coordinator failed with err: a newer one may exist on
// another replica.
func (r *Refresher) revokeBestEffort(ctx context.Context, rec, cur *record, err error) error {
	var ce *CoordinatorError
	if !errors.As(err, &ce) {
		err = &CoordinatorError{Op: "load", Err: err}
	}
	r.ledger.revoke(r.cfg.Now(), r.retainUntil(ctx), ErrRevoked, rec, cur)
	return errors.Join(err, r.revokeAtServer(ctx, &cur.Token))
}

// revokeAtServer revokes tok's refresh token, then its access token, at
// the revocation endpoint, if one is configured. It tries both and returns
// the first failure.
func (r *Refresher) revokeAtServer(ctx context.Context, tok *Token) error {
	if r.cfg.RevocationURL == "" {
		return nil
	}
	var first error
	if tok.RefreshToken != "" {
		first = r.revoke(ctx, tok.RefreshToken, "refresh_token")
	}
	if err := r.revoke(ctx, tok.AccessToken, "access_token"); first == nil {
		first = err
	}
	return first
}

// revoke sends one revocation request for token. Like a refresh, it is
// sent once: never retried.
func (r *Refresher) revoke(ctx context.Context, token, hint string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RefreshTimeout)
	defer cancel()
	var (
		req  *http.Request
		sent secrets
		err  error
	)
	switch r.cfg.RevocationStyle {
	case RevokeQueryGET:
		req, err = queryRequest(ctx, r.cfg.RevocationURL, token)
	default:
		form := url.Values{"token": {token}, "token_type_hint": {hint}}
		req, sent, err = r.authRequest(ctx, r.cfg.RevocationURL, form)
	}
	if err != nil {
		return &RevocationError{TokenTypeHint: hint, Err: err}
	}
	sent = append(sent, token)
	resp, err := r.endpoints.Do(req)
	if err != nil {
		return &RevocationError{TokenTypeHint: hint, Err: sent.scrubErr(scrubURLError(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil // RFC 7009: the body, if any, is of no interest
	}
	if err != nil {
		return &RevocationError{TokenTypeHint: hint, StatusCode: resp.StatusCode,
			Err: sent.scrubErr(errors.New("reading answer: " + err.Error()))}
	}
	sent = sent.withAnswer(body)
	re := &RevocationError{TokenTypeHint: hint, StatusCode: resp.StatusCode}
	if len(body) > maxResponseBytes {
		re.Description = "answer larger than 1 MiB"
	} else if e, ok := decodeOAuthError(body); ok {
		re.Code = sent.scrubCode(e.Code)
		re.Description = limit(sent.scrub(e.Description), 256)
	} else {
		re.ContentType = limit(sent.scrub(mediaType(resp.Header)), 64)
		re.Snippet = sent.snippet(resp.StatusCode, resp.Header, body)
	}
	return re
}

// queryRequest returns GET endpoint?token=token, the revocation request of
// RevokeQueryGET.
func queryRequest(ctx context.Context, endpoint, token string) (*http.Request, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, errorString("RevocationURL is not a valid URL")
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errorString("RevocationURL is not a valid URL")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}
