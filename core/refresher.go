package core

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// A Refresher hands out a valid access token for the session of a request,
// refreshing it when it is about to expire or when the FHIR server rejected
// it, and persisting the rotated token in the session.
//
// Its one promise: a refresh token is never sent to the token endpoint
// twice by this process. Concurrent requests share one refresh; a request
// holding a stale copy of the session gets the grant's newest token instead
// of redeeming its old refresh token again. The one exception is a request
// whose answer was lost (ErrOutcomeUnknown): no client can know whether the
// server used the token, and the refresh resends it once, promptly, while a
// server's reuse grace window is open (Config.ResendAfter). See the package
// documentation.
//
// A Refresher is safe for concurrent use; create one per token endpoint and
// client, and share it.
type Refresher struct {
	cfg     Config
	flights singleflight.Group // keyed by refresh-token fingerprint
	sharing sync.Map           // flight key → *atomic.Int64 callers (observe.go)
	slots   *slots             // Config.MaxConcurrentRefreshes; nil: no cap
	ledger  *ledger
	// endpoints is HTTPClient without redirects, for the token and
	// revocation endpoints: a redirect would re-post the refresh token and
	// the client secret to wherever it points.
	endpoints *http.Client
	signer    jose.Signer // client assertions, for PrivateKeyJWT
	sealer    *sealer     // EncryptionKeys, DecryptionKeys; nil: none
	values    *valueCache // session values decoded (sessionvalue.go)
	touches   touchTable  // launches whose use this process wrote lately (launches.go)
	bases     []baseURL   // Config.FHIRBaseURLs, parsed

	sleep func(context.Context, time.Duration) error // retry waits; tests replace it
	// lookedUp, when set (by tests), runs in Logout after it looked up the
	// grant's newest token and before it revokes it.
	lookedUp func()
	// joined and redeeming, when set (by tests), run after a caller joined
	// a flight and when a flight starts its redemption, before any of its
	// deadlines: a test can hold a flight until all its callers joined.
	joined, redeeming func()
	// shareWithin bounds how long a refresh waits for its record to be
	// made (coordinator.go); tests shorten it.
	shareWithin time.Duration

	probation probation // tokens of 401-triggered refreshes (rejected.go)
	backoff   backoffs  // grants whose last refresh failed (backoff.go)
	// unrenewable: rejected tokens without a refresh token (rejected.go)
	unrenewable unrenewable
	settling    sync.Map // ctx.Done() of requests with a settle scheduled (session.go)
}

// maxChain bounds how many ledger steps a refresh follows; a chain is
// normally one or two steps long.
const maxChain = 8

// New returns a Refresher for cfg, or a *ConfigError naming the first field
// that is wrong.
func New(cfg Config) (*Refresher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ttl := cfg.Sessions.Lifetime
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	r := &Refresher{cfg: cfg, ledger: newLedger(ttl), values: newValueCache(), shareWithin: shareWithin}
	r.touches.seed = maphash.MakeSeed()
	endpoints := *cfg.HTTPClient
	endpoints.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// Token and revocation calls run on their own budget, RefreshTimeout:
	// an HTTPClient.Timeout meant for FHIR calls must not cut a token call
	// short after the server rotated the refresh token (outcome unknown,
	// and the next request would send the spent token).
	endpoints.Timeout = 0
	r.endpoints = &endpoints
	var err error
	r.slots = newSlots(cfg.MaxConcurrentRefreshes, cfg.RefreshQueueTimeout)
	if r.sealer, err = newSealer(cfg.EncryptionKeys, cfg.DecryptionKeys, cfg.SessionKey); err != nil {
		return nil, err
	}
	if r.bases, err = parseBaseURLs(cfg.FHIRBaseURLs); err != nil {
		return nil, err
	}
	if cfg.AuthMethod == PrivateKeyJWT {
		alg, err := signingAlg(cfg.PrivateKey, cfg.SigningAlg)
		if err != nil {
			return nil, err
		}
		r.cfg.SigningAlg = alg
		if r.signer, err = newAssertionSigner(cfg.PrivateKey, cfg.KeyID, alg); err != nil {
			return nil, &ConfigError{Field: "PrivateKey", Reason: "cannot sign: " + err.Error()}
		}
	}
	return r, nil
}

// Format prints the Refresher as its Config, without secrets, under every
// fmt verb.
func (r *Refresher) Format(f fmt.State, verb rune) {
	if f.Flag('#') {
		fmt.Fprintf(f, "&core.Refresher{cfg:%#v}", r.cfg)
		return
	}
	fmt.Fprintf(f, "&{%v}", r.cfg)
}

// String returns the Refresher's configuration without secrets.
func (r *Refresher) String() string { return fmt.Sprint(r) }

// LogValue implements slog.LogValuer: logs show the Refresher's Config
// without secrets.
func (r *Refresher) LogValue() slog.Value { return r.cfg.LogValue() }

// Save stores tok in the session of ctx and commits the session, after the
// app obtained tok (typically by exchanging an authorization code). It
// first renews the session token, as a login should, to prevent session
// fixation.
//
// The session then holds this one login: Save replaces every launch the
// session held (see Launcher), and with Config.RevocationURL set it
// revokes their grants, as Logout would (a token saved again, with the
// same refresh token, stays the same grant and is not revoked).
func (r *Refresher) Save(ctx context.Context, tok *Token) error {
	if tok == nil || tok.AccessToken == "" {
		return ErrInvalidToken
	}
	if _, ok := r.get(ctx); !ok {
		return noSession(ctx)
	}
	// The launches replaced: the request's copy's, and the store's now.
	var replaced []*record
	seen := func(rec *record) bool {
		return rec.Token.AccessToken == tok.AccessToken || tok.RefreshToken != "" && rec.Token.RefreshToken == tok.RefreshToken ||
			slices.ContainsFunc(replaced, func(o *record) bool { return o.Token.AccessToken == rec.Token.AccessToken })
	}
	collect := func(ctx context.Context) {
		_, vals := r.launchesOf(ctx)
		for _, v := range vals {
			if rec, err := r.decodeSessionRecord(v); err == nil && !seen(rec) {
				replaced = append(replaced, rec)
			}
		}
	}
	_, ownVals := r.launchesOf(ctx)
	collect(ctx)
	if token := r.cfg.Sessions.Token(ctx); token != "" && r.cfg.RevocationURL != "" {
		if fresh, err := r.cfg.Sessions.Load(context.Background(), token); err == nil && r.cfg.Sessions.Token(fresh) != "" {
			collect(fresh)
		}
	}
	if err := r.cfg.Sessions.RenewToken(ctx); err != nil {
		return err
	}
	rec := &record{Token: *tok, Obtained: r.cfg.Now(), Grant: newGrantID()}
	if tok.RefreshToken != "" {
		// The session's own token saved again: the same grant, at the
		// same point of its chain, so that copies of it stay recognisable.
		for _, v := range ownVals {
			if old, err := r.decodeSessionRecord(v); err == nil && old.Grant != "" && old.Token.RefreshToken == tok.RefreshToken {
				rec.Grant, rec.Refreshes = old.Grant, old.Refreshes
			}
		}
	}
	r.cfg.Sessions.Remove(ctx, r.identityKey())
	if err := r.store(ctx, slot{}, rec); err != nil {
		return err
	}
	for _, old := range replaced {
		r.revokeReplaced(ctx, old, tok) // replaced.go
	}
	return nil
}

// Token returns a valid token for the session of ctx: that of the launch
// ctx names (WithLaunch, LaunchContext, or the middleware's context), or of
// the session's most recent launch when it names none, so that an app of
// one login works as it always did. A launch the session does not hold is
// ErrLaunchGone, never another launch's token. When the stored token
// is within Leeway of its expiry, Token refreshes it first (sharing the
// refresh with every other request of the same grant) and stores the new
// one in the session.
//
// The error matches ErrReauthRequired when the user must authorize again,
// ErrTransient when the token endpoint failed in a way that may pass (the
// stored token is kept), or ErrMisconfigured. A cancelled ctx stops the
// wait, not the shared refresh.
//
// The token is shared with the other requests of the session, so that the
// hot path allocates nothing for it: read it, never modify it (copy the
// struct, and its Extra map, to change one).
func (r *Refresher) Token(ctx context.Context) (*Token, error) {
	tok, _, err := r.tokenOf(ctx, launchOf(ctx))
	return tok, err
}

// tokenOf is Token for the launch named name, and that launch's slot.
func (r *Refresher) tokenOf(ctx context.Context, name string) (*Token, slot, error) {
	rec, s, err := r.load(ctx, name)
	if err != nil {
		return nil, s, err
	}
	if s.entry != nil {
		r.touch(ctx, s)
	}
	if !r.due(rec) || rec.Token.RefreshToken == "" && rec.Token.Valid(r.cfg.Now()) {
		return &rec.Token, s, nil
	}
	next, err := r.refresh(ctx, s, rec)
	if err != nil {
		if errors.Is(err, ErrTransient) && rec.Token.Valid(r.cfg.Now()) {
			// Within Leeway the old token still works: use it, and let a
			// later request try the refresh again.
			return &rec.Token, s, nil
		}
		return nil, s, err
	}
	return &next.Token, s, nil
}

// refreshAfter401 returns the token to retry with after the FHIR server
// answered 401 to rejected: the grant's newest token if another request
// already replaced it, otherwise a refreshed one. challenge is the 401's
// WWW-Authenticate header.
//
// A token obtained by a 401-triggered refresh less than
// TokenRejectedCoolDown ago is not refreshed again when it is rejected too:
// the error is then a *TokenRejectedError. Concurrent 401s to the same
// token share one refresh, as every refresh does.
func (r *Refresher) refreshAfter401(ctx context.Context, rejected *Token, challenge string) (*Token, error) {
	rec, s, err := r.load(ctx, launchOf(ctx))
	if err != nil {
		return nil, err
	}
	// The request's copy may hold a token that a refresh (this request's,
	// or another's) has replaced: adopt leaves unmodified copies alone.
	if next := r.newestKnown(rec); next != rec {
		next = inLaunch(rec, next)
		r.takeOver(ctx, s, next)
		rec = next
	}
	if rec.Token.AccessToken != rejected.AccessToken && !r.due(rec) {
		return &rec.Token, nil
	}
	now := r.cfg.Now()
	if rec.Token.RefreshToken == "" && rec.Token.Valid(now) && rec.Token.AccessToken == rejected.AccessToken &&
		now.Sub(r.unrenewable.rejected(rejected.AccessToken, now)) < TokenRejectedCoolDown {
		// Nothing to refresh it with, and still valid: the 401 goes back
		// as it came and the session stays, until the token expires or
		// the FHIR server has rejected it for a whole cool-down.
		return nil, errPassThrough401
	}
	if since, ok := r.probation.check(rejected.AccessToken, now); ok {
		return nil, &TokenRejectedError{Code: bearerErrorCode(challenge), CoolDown: TokenRejectedCoolDown, Since: since}
	}
	if rec, err = r.refresh(ctx, s, rec); err != nil {
		return nil, err
	}
	r.probation.add(rec.Token.AccessToken, rec.Obtained, now)
	return &rec.Token, nil
}

// due reports whether rec's access token should be refreshed now. The
// margin before expiry is Leeway, or a quarter of the token's lifetime when
// that is shorter, so that a token just obtained is never due.
func (r *Refresher) due(rec *record) bool {
	at := r.refreshAt(rec)
	return !at.IsZero() && !r.cfg.Now().Before(at)
}

// refreshAt is when rec's token becomes due: Leeway before its expiry, or a
// quarter of its lifetime for short-lived tokens; zero without an expiry.
func (r *Refresher) refreshAt(rec *record) time.Time {
	exp := rec.Token.Expiry
	if exp.IsZero() {
		return time.Time{}
	}
	margin := r.cfg.Leeway
	if life := exp.Sub(rec.Obtained); life > 0 && life/4 < margin {
		margin = life / 4
	}
	return exp.Add(-margin)
}

// refresh is the refresh algorithm; every refresh goes through it.
//
//  1. If cur's refresh token was already redeemed by this process (cur is a
//     stale copy, or another request refreshed a moment ago), take the
//     grant's newest token from the ledger. If that one is still good, use
//     it without a token call; if it is due too, refresh it instead.
//  2. Otherwise redeem the refresh token in a flight shared by every caller
//     holding the same refresh token: one token call, whose result every
//     caller stores in its own copy of the session.
//
// The token call runs on a context detached from any caller, so a caller
// whose request is cancelled stops waiting without cancelling it.
func (r *Refresher) refresh(ctx context.Context, s slot, cur *record) (*record, error) {
	if ctx.Value(observingKey{}) != nil {
		return nil, errObserverRefresh
	}
	own := cur
	for range maxChain {
		if rv := r.ledger.isRevokedRecord(cur, r.cfg.Now()); rv != nil {
			r.reauthOnce(ctx, rv)
			r.remove(ctx, s)
			return nil, rv.reason
		}
		if cur.Token.RefreshToken == "" {
			r.reauth(ctx, ErrNoRefreshToken)
			r.remove(ctx, s)
			return nil, ErrNoRefreshToken
		}
		fp := fingerprintOf(cur.Token.RefreshToken)
		next, err := r.newest(ctx, cur, fp)
		if err != nil {
			return nil, err
		}
		if next != nil {
			next = inLaunch(own, next)
			if r.due(next) {
				cur = next
				continue
			}
			r.takeOver(ctx, s, next)
			return next, nil
		}
		if next = r.newerHead(cur, fp, r.cfg.Now()); next != cur && !r.due(next) {
			next = inLaunch(own, next)
			// A refresh that did not rotate the refresh token replaced
			// cur's access token (this request's own copy keeps the
			// token it loaded: see adopt).
			r.takeOver(ctx, s, next)
			return next, nil
		}
		// A grant whose last refresh failed moments ago waits its turn
		// (Token hands out the old access token meanwhile, if valid).
		if err := r.backoff.check(fp, r.cfg.Now()); err != nil {
			return nil, err
		}
		key := string(fp[:])
		shared := r.joinFlight(key)
		ch := r.flights.DoChan(key, func() (_ any, err error) {
			defer r.leaveFlight(key, shared)
			// A panic of the app's code (an Observer, a hook) ends the
			// flight with its value, for its callers to panic with in
			// their own requests: singleflight would panic in a goroutine
			// of its own, which no one can recover, ending the process.
			defer func() {
				if v := recover(); v != nil {
					err = &flightPanic{value: v}
				}
			}()
			if r.redeeming != nil {
				r.redeeming()
			}
			return r.redeem(ctx, s, fp, cur, shared)
		})
		if r.joined != nil {
			r.joined()
		}
		var res singleflight.Result
		select {
		case res = <-ch:
			r.leaveFlight(key, shared)
		case <-ctx.Done():
			r.leaveFlight(key, shared)
			return nil, context.Cause(ctx)
		}
		if fp, ok := res.Err.(*flightPanic); ok {
			panic(fp.value)
		}
		if res.Err != nil {
			if errors.Is(res.Err, ErrReauthRequired) {
				r.remove(ctx, s)
			}
			return nil, res.Err
		}
		next = inLaunch(own, res.Val.(*record))
		if r.due(next) && next.Token.RefreshToken != cur.Token.RefreshToken {
			// The flight found an older redemption in the ledger.
			cur = next
			continue
		}
		r.adopt(ctx, s, next) // persist in redeem has stored it
		return next, nil
	}
	return nil, errChainTooLong
}

// inLaunch returns next, a newer token of own's grant (from the ledger, a
// flight, another replica's record), as the token of own's launch: with
// own's launch context. A launch's patient is fixed at its launch, while
// the records that a grant's refreshes leave are shared by whoever holds
// its token values: a server that handed two launches of one session the
// same token values (some hand a new login of the same user the tokens of
// the last) has their refreshes share one flight and one ledger lineage,
// and each launch must keep its own patient. (The grant id does not tell
// them apart: a launch that took over the other's newer token carries its
// grant id from then on.) For a record of own's own launch this changes
// nothing: its refreshes kept own's context already (merge).
func inLaunch(own, next *record) *record {
	t := withLaunchContext(&next.Token, &own.Token)
	if t == &next.Token {
		return next
	}
	c := *next
	c.Token = *t
	return &c
}

// errChainTooLong: following the ledger from a stale copy took more than
// maxChain steps. Nothing was sent; the token is kept.
var errChainTooLong = &transientError{err: errors.New("refresh chain too long")}

// redeem makes the one token call for the refresh token fp of cur. It runs
// once per flight; ctx is the session of the caller that started it, and
// shared counts the callers waiting for it.
func (r *Refresher) redeem(ctx context.Context, s slot, fp fingerprint, cur *record, shared *atomic.Int64) (*record, error) {
	// Logout may have revoked the grant since the caller looked.
	if rv := r.ledger.isRevokedRecord(cur, r.cfg.Now()); rv != nil {
		return nil, rv.reason
	}
	// A flight that finished between the caller's ledger look-up and this
	// one's start has already redeemed fp.
	if next := r.ledger.newest(cur, fp, r.cfg.Now(), r.retainUntil(ctx)); next != nil {
		return next, nil
	}
	// Each wait before the token call has a deadline of its own, and the
	// call starts with the whole RefreshTimeout: a call that runs out of
	// time after it was sent has an unknown outcome (the server may have
	// rotated), so no queue may eat into its budget.
	lockCtx, cancelLock := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RefreshTimeout)
	defer cancelLock()
	// With a Coordinator, only the replica holding fp's lock may redeem it,
	// and it first checks that no other replica already did.
	unlock, err := r.lockShared(lockCtx, fp)
	if err != nil {
		return nil, err
	}
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	if r.cfg.Coordinator != nil {
		if next, err := r.sharedRedemption(lockCtx, cur, fp); next != nil || err != nil {
			return next, err
		}
	}
	call := r.startRefresh(context.WithoutCancel(ctx))
	// Queue for one of the MaxConcurrentRefreshes slots, for at most
	// RefreshQueueTimeout; a refresh that finds none fails as transient
	// (503 with Retry-After) without sending anything.
	queued := time.Now()
	release, err := r.slots.acquire(call.ctx)
	if err != nil {
		r.refreshFailed(ctx, call, RefreshErrorInfo{Err: err, Class: class(err),
			Duration: time.Since(queued), Shared: int(shared.Load())})
		return nil, err
	}
	defer release()
	// The claim: with a Coordinator, nothing is sent
	// unless the refresh token is claimed for the whole call (claimSend
	// waits while another replica that lost this lock may still be in its
	// token call). The claim is released with the lock once the outcome is
	// known (and recorded); if it is unknown, the server may have used the
	// refresh token, and the claim stays until it expires.
	keepClaim, callDeadline := false, time.Now().Add(r.cfg.RefreshTimeout)
	if r.cfg.Coordinator != nil {
		releaseClaim, deadline, next, err := r.claimSend(lockCtx, cur, fp)
		if err != nil {
			r.refreshFailed(ctx, call, RefreshErrorInfo{Err: err, Class: class(err), Shared: int(shared.Load())})
			return nil, err
		}
		if next != nil {
			call.end()
			return next, nil
		}
		held := unlock
		unlock = func() {
			if !keepClaim {
				releaseClaim()
			}
			held()
		}
		callDeadline = deadline
	}
	callCtx, cancel := context.WithDeadline(call.ctx, callDeadline)
	defer cancel()
	// The claim is kept until the outcome is known: should anything panic
	// (an Observer's Resend) after the refresh token was sent, it stays.
	keepClaim = true
	start := r.cfg.Now()
	tok, err := r.requestTokenWithRetry(callCtx, cur.Token.RefreshToken)
	resent := false
	if errors.Is(err, ErrOutcomeUnknown) && r.resendLost(callCtx, cur, fp, err) {
		// The answer was lost: send the same refresh token once more, at
		// once, while a server's reuse grace window (if it has one) is
		// open. A strict server revokes the grant on it, as it would on
		// the next request's resend, whenever that came.
		resent = true
		tok, err = r.requestTokenWithRetry(callCtx, cur.Token.RefreshToken)
	}
	elapsed := r.cfg.Now().Sub(start)
	keepClaim = errors.Is(err, ErrOutcomeUnknown)
	if err != nil {
		// What the failure means is recorded before the Observer and
		// hooks hear of it: one that panics must not keep a stale copy
		// from knowing the grant is over.
		info := RefreshErrorInfo{Err: err, Class: class(err),
			OutcomeUnknown: errors.Is(err, ErrOutcomeUnknown), Duration: elapsed, Shared: int(shared.Load()), Resent: resent}
		var rv *revocation
		if errors.Is(err, ErrReauthRequired) {
			// The grant is over. No copy of its tokens may be used
			// again: a stale copy of the session, even the one of this
			// request (remove leaves an unmodified copy as it is), must
			// not send the refresh token a second time.
			rv = r.ledger.revoke(r.cfg.Now(), r.retainUntil(ctx), err, cur)
		}
		if backsOff(err) {
			// Its callers get the backoff as their Retry-After hint.
			err = &backingOff{err: err, retryAfter: r.backoff.failed(fp, r.cfg.Now(), err)}
		}
		r.refreshFailed(ctx, call, info)
		if rv != nil {
			r.reauthOnce(ctx, rv)
		}
		return nil, err
	}
	r.backoff.succeeded(fp)
	grant := cur.Grant
	if grant == "" {
		grant = newGrantID() // a record saved before grants were named
	}
	merged, mismatch := merge(&cur.Token, tok, r.cfg.Scope)
	if len(mismatch) > 0 {
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: the refresh answer names another launch context; the launch's is kept",
			"fields", mismatch)
	}
	next := &record{Token: *merged, Obtained: start, Refreshes: cur.Refreshes + 1, Grant: grant}
	r.ledger.redeem(cur, fp, next, start, r.retainUntil(ctx))
	rotated := tok.RefreshToken != "" && tok.RefreshToken != cur.Token.RefreshToken
	if r.cfg.Coordinator != nil && rotated && !r.shareRedemption(ctx, fp, next, unlock) {
		// Not recorded yet: the lock stays held until it is, by
		// shareRedemption's goroutine, which now owns unlock.
		unlock = nil
	}
	// Persist at once in the starting caller's session, whatever becomes of
	// that caller's request.
	r.persist(ctx, s, next)
	r.refreshed(ctx, call, RefreshInfo{
		Rotated:  rotated,
		Duration: elapsed, Expiry: next.Token.Expiry, Shared: int(shared.Load()),
		ContextMismatch: mismatch, Resent: resent,
	})
	return next, nil
}

// resendLost reports, after waiting Config.ResendAfter, whether cur's
// refresh token fp, whose answer was lost (err), is to be sent once more:
// unless the resend is off, the grant was already failing before (an
// outage, not a blip: it backs off instead), the refresh's budget (ctx, of
// RefreshTimeout) leaves too little time, or meanwhile another replica
// recorded a redemption of fp (this one's Coordinator lock may have lapsed:
// a resend would then be a reuse; the next request takes that redemption
// over). It logs and counts the resend.
func (r *Refresher) resendLost(ctx context.Context, cur *record, fp fingerprint, err error) bool {
	d := r.cfg.ResendAfter
	if d < 0 || r.backoff.failing(fp) {
		return false
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < 2*d+time.Second {
		return false
	}
	if r.wait(ctx, d) != nil {
		return false
	}
	if next, lerr := r.newest(ctx, cur, fp); next != nil || lerr != nil {
		return false
	}
	r.cfg.Logger.WarnContext(ctx, "smartrefresh: the answer to a refresh was lost; resending the refresh token once",
		"after", d, "error", err)
	r.resent(ctx)
	return true
}

// SessionInfo is what a session's token says about itself, without its
// secrets. Its JSON names are the snake_case ones of the demo's /api/token.
type SessionInfo struct {
	// Expiry is when the access token expires; zero (and left out of
	// JSON) when the server did not say.
	Expiry          time.Time `json:"expires_at,omitzero"`
	Scope           string    `json:"scope"`
	Patient         string    `json:"patient"`
	Encounter       string    `json:"encounter"`
	HasRefreshToken bool      `json:"has_refresh_token"`
	// Refreshes counts the refreshes since the token was saved.
	Refreshes int `json:"refreshes"`
	// FHIRBaseURL is the FHIR server the token is for (the aud of the
	// launch), when a Launcher logged the session in.
	FHIRBaseURL string `json:"fhir_base_url"`
	// FHIRUser is the logged-in user as a FHIR resource URL (such as
	// https://ehr.example/fhir/Practitioner/123), from the fhirUser claim
	// of the id_token a Launcher validated; empty without openid and
	// fhirUser in the scope.
	FHIRUser string `json:"fhir_user"`
	// Obtained is when this process saw the token issued: at the login, or
	// at the last refresh (Refreshes > 0).
	Obtained time.Time `json:"obtained_at,omitzero"`
	// RefreshAt is when the token becomes due: from then on Token refreshes
	// it before answering. It is Leeway before Expiry, or a quarter of the
	// token's lifetime before it for short-lived tokens; zero when Expiry is.
	RefreshAt time.Time `json:"refresh_at,omitzero"`
	// Launch is the id of the launch the token is of, which the page
	// names in its requests (LaunchHeader, LaunchParam); empty for the
	// one login Save stored.
	Launch string `json:"launch"`
}

// Info describes the token of the launch ctx names (the most recent one
// when it names none) without refreshing it. The error is ErrNoToken when
// there is none, ErrLaunchGone when the named launch is not in the
// session.
func (r *Refresher) Info(ctx context.Context) (SessionInfo, error) {
	rec, s, err := r.load(ctx, launchOf(ctx))
	if err != nil {
		return SessionInfo{}, err
	}
	var id identity
	if s.entry != nil {
		id = s.entry.Identity
	} else {
		id = r.identityOf(ctx)
	}
	return SessionInfo{
		Expiry:          rec.Token.Expiry,
		Scope:           rec.Token.Scope,
		Patient:         rec.Token.Patient,
		Encounter:       rec.Token.Encounter,
		HasRefreshToken: rec.Token.RefreshToken != "",
		Refreshes:       rec.Refreshes,
		FHIRBaseURL:     id.Aud,
		FHIRUser:        id.FHIRUser,
		Obtained:        rec.Obtained,
		RefreshAt:       r.refreshAt(rec),
		Launch:          s.id,
	}, nil
}

// flightPanic is a panic in a flight (of the app's code: an Observer, a
// hook), which each of its callers panics with again.
type flightPanic struct{ value any }

func (p *flightPanic) Error() string {
	return fmt.Sprint("smartrefresh: panic in a refresh: ", p.value)
}
