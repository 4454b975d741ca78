// Package core keeps a SMART on FHIR access token valid for every session of
// a web app: it logs users in (SMART App Launch), stores the token in the
// app's scs session, refreshes it before it expires and after a 401, and
// never sends a refresh token twice. It is framework-agnostic: the
// nethttpadapter, echoadapter and ginadapter packages turn it into one line
// of middleware.
//
// # Usage
//
// What an app calls, in order (Example shows it as one program, and
// examples/quickstart in the repository runs it):
//
//  1. New(Config) makes the Refresher: the token endpoint (TokenURL), the
//     client (ClientID, ClientSecret or PrivateKey, and AuthMethod, never
//     guessed), the scs session manager (Sessions), the FHIR servers the
//     token may go to (FHIRBaseURLs) and a Logger. A Preset fills the
//     endpoints of a known platform (HealthGorillaSandbox.Config(…)).
//  2. NewLauncher(r, LaunchConfig) adds SMART App Launch: mount its
//     LaunchHandler at the app's /launch and its CallbackHandler at the
//     RedirectURL registered at the server.
//  3. Protect routes with an adapter's Middleware, for example
//     nethttpadapter.Middleware(r, nethttpadapter.WithLoginURL("/launch")):
//     a request gets a valid token, or a 401 (a browser: a redirect to the
//     launch that comes back to the page), a 503 or a 500.
//  4. In a handler, call the FHIR server with r.Client(ctx), which adds the
//     token and handles a 401 once, or read it with TokenFromContext; read
//     the patient, the user and the expiry with r.Info(ctx). ctx is always
//     the request's context, which carries the session (in Gin,
//     c.Request.Context(), not c).
//  5. Wrap the whole handler (or engine) with the session manager's
//     LoadAndSave.
//  6. Answer errors with WriteError (or ErrorResponse); see Errors below.
//  7. Log out with r.Logout(ctx), which revokes the grant.
//
// Browser code calls FHIR through FHIRProxy instead of holding a token.
// Several replicas on one session store set Config.Coordinator (packages
// rediscoord and pgcoord). Tests log in against core/smarttest, a strict
// mock SMART server.
//
// # SMART App Launch
//
// NewLauncher puts SMART App Launch in front of a Refresher: its
// LaunchHandler starts EHR launches (iss checked against an allow-list,
// exactly) and standalone launches, with state, PKCE S256, aud and nonce
// kept in the scs session (single-use, expiring, several per session); its
// CallbackHandler checks the state, exchanges the code once with the
// Refresher's client authentication, validates the id_token (go-oidc:
// signature from jwks_uri, issuer, audience, expiry, nonce) and saves the
// token with Save. SessionInfo then names the FHIR server and the user
// (fhirUser); Token's methods read the launch context. Failures are
// *LaunchError answers a user can act on, including the iframe case of a
// callback without its session cookie.
//
// # Several launches (tabs, patients)
//
// Each completed launch is its own login, with its own token, grant,
// patient and user, named by a launch id that CallbackHandler adds to the
// page it lands on (smart_launch=…). A session keeps up to
// Config.MaxLaunches of them, for tabs launched from the EHR for different
// patients. A request names its launch with the X-SMART-Launch header or
// the smart_launch query parameter (RequestLaunch; the adapters, FHIRProxy
// and AttachRequest read it; LaunchContext and WithLaunch name it for
// Token, Client and Info), and gets that launch's token, or ErrLaunchGone
// when the session no longer holds it: never another launch's. A request
// naming none gets the most recent launch. The refresh algorithm runs per
// launch, with every guarantee above; LogoutLaunch ends one launch, Logout
// all of them.
//
// # Browser apps
//
// FHIRProxy is a backend-for-frontend: the page calls the app's own origin
// (with the header X-CSRF: 1) and the proxy forwards each call to the FHIR
// server with the session's token, so the browser never holds it. It
// refreshes and replays as Client does, and passes only allow-listed
// headers each way; it refuses paths a server could resolve outside the
// upstream base (the rule of Client's destinations), keeps every answer out
// of caches and unable to run script on the app's origin, masks the token
// in anything that comes back, and rewrites a Bundle's links to itself as
// the answer streams. FHIRProxy's documentation tabulates its security
// model: what the browser can send, what reaches the upstream, what comes
// back.
//
// # Client authentication
//
// Config.AuthMethod names the one method the client uses at the token
// endpoint: ClientSecretPost, ClientSecretBasic, None, or PrivateKeyJWT
// (SMART's confidential asymmetric clients: a fresh client assertion,
// RS384 or ES384, signed with Config.PrivateKey for every request; any
// crypto.Signer, so HSM and KMS keys work). It is configured, never
// guessed, and a failed request is never repeated with another method.
//
// # Discovery and presets
//
// Discover reads a server's .well-known/smart-configuration (cached, one
// fetch for concurrent callers) and SMARTConfiguration.Config fills a
// Config's endpoints from it; New then refuses an AuthMethod the server
// does not list. HealthGorillaSandbox and HealthGorillaProduction hold
// Health Gorilla's endpoints.
//
// # Logout
//
// Refresher.Logout revokes the session's grants at Config.RevocationURL
// (RFC 7009, or Health Gorilla's GET ?token=) and removes the token from
// the session, even when revocation fails. It revokes the grant's newest
// refresh token as any replica knows it (through the Coordinator), not a
// rotated one a server may ignore, and never races a refresh in flight.
// The Refresher remembers the revoked grant, so neither a refresh in flight
// nor a stale session copy brings the token back.
//
// # Errors
//
// Every failure matches one of three classes with errors.Is:
// ErrReauthRequired (the user must launch or log in again; the token has been
// removed from the session), ErrTransient (the token endpoint failed in a way
// that may pass; the stored token is kept) and ErrMisconfigured. The table
// of causes and outcomes is in the documentation of ErrReauthRequired.
// Four functions turn an error into an answer, each for one need:
//
//   - WriteError writes the default answer (JSON, 401/503/500, Retry-After on
//     a 503). The adapters use it unless given an error handler; pass it, or
//     call it from your own handler, wherever an error handler is asked for.
//   - ErrorResponse gives the same status and body for an app that writes
//     its answers its own way, such as Gin's c.JSON(core.ErrorResponse(err)).
//   - RetryAfter gives the wait to put in a 503's Retry-After.
//   - ErrorHandler(loginURL, otherwise) sends browser navigations that need
//     a new authorization to the login or launch page, and everything else
//     to otherwise; every adapter's login URL option is this one rule.
//
// Everything else is errors.Is and errors.As on the errors themselves.
//
// # Secrets
//
// Token and Config redact their secrets under fmt, log/slog and
// encoding/json, and no error carries a token, the client secret or a
// client assertion: text an endpoint answered is scrubbed of every secret
// the request sent before it goes into an error.
//
// Client sends the access token over https only (plain http only to
// loopback) and, with Config.FHIRBaseURLs, only to the FHIR server.
// Config.EncryptionKeys encrypt the token inside the session (AES-256-GCM);
// Config.DecryptionKeys let replicas rotate keys without logging anyone
// out. Save renews the session token, against session fixation.
//
// # Session values
//
// The session holds the token as a string, so any scs codec (gob, JSON, a
// codec of string fields) carries it unchanged; the forms earlier versions
// stored are still read. A value this process cannot read but another
// replica may (sealed with a key it does not have, or stored by a newer
// version) is left as it is and the request fails as transient; only a
// value that is corrupt under a key this process has is removed.
//
// # A refresh token is never sent twice
//
// A Refresher reads the token from the request's scs session, refreshes it
// at the token endpoint when it is within Leeway of expiry (Token) or when
// the FHIR server answered 401 (Client), and stores the answer in the
// session at once: in the session as it is in the store, read afresh, never
// by committing the request's own copy (see "Session copies" below).
//
// Servers that follow RFC 9700 rotate refresh tokens and revoke the whole
// grant when a rotated one is presented again. The refresh algorithm
// prevents each way a process could send one twice:
//
//   - Concurrent requests of a session that find the token due share one
//     refresh (a single flight keyed by the refresh token). Each waiter's
//     copy of the session gets the result when its request commits it
//     anyway, so none writes the old token back. A waiter whose request is
//     cancelled stops waiting; the refresh goes on and is stored.
//   - scs commits whole session blobs and the last writer wins, so a slow
//     request that loaded the session before a rotation can write the old
//     token back. The Refresher keeps a ledger with each grant's newest
//     token; tokens carry their grant's name and refresh count, so a copy
//     holding a redeemed refresh token is recognised. Its request gets the
//     newest token from the ledger (and repairs the stored session) instead of
//     calling the token endpoint. An entry lives as long as any copy of its
//     session can: the session's scs Deadline or now plus the manager's
//     current Lifetime, whichever is later, read at each redemption (set a
//     "remember me" deadline after Save: its RenewToken resets it). One
//     entry per grant, however often it rotates; expired ones are swept a
//     few at a time.
//   - 401 storms: requests whose access token was rejected compare it with
//     the grant's newest token; if another request already replaced it
//     they retry with the new one, otherwise they share one refresh as above.
//     A FHIR server that rejects even the token such a refresh obtained gets
//     no second refresh within TokenRejectedCoolDown (ErrTokenRejected).
//   - Token calls run on their own budget, RefreshTimeout: the Timeout of
//     Config.HTTPClient, meant for FHIR calls, does not apply to them, so it
//     cannot cut one short after the server rotated the refresh token.
//   - The token request is sent once per refresh, never with another
//     client authentication method. It is sent again within the refresh
//     only when it certainly never reached the server: a connection that
//     could not be made (DNS, TCP, TLS), or a refusal: 429, or 503 with
//     Retry-After (see RetryPolicy).
//
// One case is out of any client's hands: a request that was sent but whose
// answer was lost (a timeout, a reset connection, a 502 or 504 from a
// gateway). The server may or may not have rotated the refresh token. The
// Refresher sends the same refresh token once more, promptly
// (Config.ResendAfter, 1 s, within the same refresh): a server with a grace
// period for reuse answers normally, a strict one answers invalid_grant,
// which ends in ErrReauthRequired, a clean new login. If that answer is lost
// too, it keeps the stored token, fails with ErrOutcomeUnknown, and the
// grant backs off (BackoffError) before its next try. The only
// alternative, logging the user out on every network blip, is worse.
//
// The ledger and the single flight are in memory: they cover one process.
// Apps that run several replicas on one session store set
// Config.Coordinator (packages rediscoord and pgcoord implement it on Redis
// and PostgreSQL; coordtest is the suite they pass): a refresh
// then holds a shared lock named after its refresh token, checks the shared
// ledger for another replica's redemption, claims the refresh token for
// the token call's whole RefreshTimeout (sending nothing if it cannot),
// and records its redemption before unlocking; if the shared store cannot
// be written (Redis restarting), the lock stays held until the record is
// made. The claim, not the lock, keeps a refresh token from going out
// twice when a lock is lost mid-call (see Coordinator). Without a
// Coordinator, pin
// each session to one replica, and know that a restart empties the ledger: a stale copy written back around
// a restart is redeemed again.
//
// # Session copies
//
// scs gives each request its own copy of the session and commits it whole
// (when it was modified, and on every request with IdleTimeout set). A copy
// loaded before another request wrote the session, or destroyed it (a
// logout), is stale, and committing it undoes what that request did. So
// the Refresher never commits a request's copy (but in Save, the login):
// a rotated token, or a removal, goes into the session as it is in the
// store now, read afresh, and a session that is gone from the store stays
// gone. The request's copy gets the same change only when its LoadAndSave
// will commit it anyway (it is modified); an unmodified copy stays as it
// was loaded, so LoadAndSave does not commit it, just as without the
// Refresher, and the Refresher resolves its older token through the ledger
// for the rest of the request. If the app modifies that copy later in the
// request, its commit writes the older token back, and the Refresher puts
// the newest one in the store again when the request is over. Writes to the
// store read and write without a lock, as every scs commit does: a write of
// another request between the two (one store round trip) is overwritten.
package core
