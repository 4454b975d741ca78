// Package core keeps a SMART on FHIR access token valid for every session of
// a web app. It is framework-agnostic: the echoadapter, ginadapter and
// nethttpadapter packages turn it into one line of middleware.
//
// A Refresher reads the token from the request's scs session, refreshes it
// at the token endpoint when it is within Leeway of expiry (Token) or when
// the FHIR server answered 401 (Client), and stores the answer back in the
// session at once (Put and Commit).
//
// # A refresh token is never sent twice
//
// Servers that follow RFC 9700 rotate refresh tokens and revoke the whole
// grant when a rotated one is presented again. The refresh algorithm, in
// Refresher.refresh, prevents each way a process could send one twice:
//
//   - Concurrent requests of a session that find the token due share one
//     refresh (a single flight keyed by the refresh token). Each waiter
//     stores the result in its own copy of the session, so none writes the
//     old token back. A waiter whose request is cancelled stops waiting; the
//     refresh goes on and is stored.
//   - scs commits whole session blobs and the last writer wins, so a slow
//     request that loaded the session before a rotation can write the old
//     token back. The Refresher keeps a ledger of the refresh tokens it
//     redeemed, each pointing at its grant's newest token. A request that
//     finds a redeemed refresh token in its session gets the newest token
//     from the ledger (and repairs the session) instead of calling the
//     token endpoint. Ledger entries live as long as a session can
//     (the session manager's Lifetime).
//   - 401 storms: requests whose access token was rejected compare it with
//     the session's current token; if another request already replaced it
//     they retry with the new one, otherwise they share one refresh as above.
//   - The token request is sent once per refresh: no retry, and never with
//     another client authentication method.
//
// The ledger is in memory: it covers one process. Apps that run several
// replicas behind a load balancer must pin a session to a replica (sticky
// sessions) until a shared ledger is configured.
//
// # Errors
//
// Every failure matches one of three classes with errors.Is:
// ErrReauthRequired (the user must launch or log in again; the token has been
// removed from the session), ErrTransient (the token endpoint failed in a way
// that may pass; the stored token is kept) and ErrMisconfigured.
// StatusCode and WriteError map them to HTTP answers.
//
// # Secrets
//
// Token redacts its secrets under fmt, log/slog and encoding/json, and no
// error carries a token or the client secret.
package core
