// Package pgcoord implements core.Coordinator on PostgreSQL, with pgx v5
// (pgxpool), so that the replicas of an app whose scs sessions live in
// PostgreSQL (scs's pgxstore) never redeem a refresh token twice between
// them, without adding Redis. It can share the app's *pgxpool.Pool.
//
// # The lock and the claim
//
// Lock writes a claim row in the locks table (key, a random holder value,
// an expiry a lease ahead, on the database's clock) with one statement
// that takes the row over only if it expired; a holder extends it every
// renew interval and deletes it at unlock. Waiters try again every retry
// interval (jittered). No connection is held while a lock is held or
// awaited: each attempt, extension and unlock is one statement on any
// connection of the pool, so waiters block nothing of their process, a
// pool of one connection works, and a connection that ends (a restart,
// pg_terminate_backend, idle_session_timeout, a proxy's idle timeout)
// loses nothing. A holder that crashed stops extending its row, and the
// lock is free again after at most the lease (DefaultLease, 10 s).
//
// The lock is for liveness; safety does not depend on it. Just before the
// token call, the holder claims the refresh token: Claim inserts a row
// "smartrefresh:sending:<h>" in the records table, expiring RefreshTimeout
// + 1 s later, unless a live one is there; it is never extended. If the
// claim cannot be written, nothing is sent. A replica that takes the lock
// while a claim lives (the holder's lease ran out while the database was
// down, or the holder could not reach it) waits for that call's record, or
// for the claim to expire: a claim on a refresh token outlives the token
// call it protects. The claim is deleted once the outcome is known and
// recorded; when the outcome is unknown it stays until it expires.
//
// # Records
//
// Store writes (key, value, expiry) rows, expiring on the database's
// clock; Load ignores expired rows, and at most once per cleanup interval
// a Store deletes expired records and claims. A redemption record holds
// the grant's newest token, sealed with core.Config.EncryptionKeys when
// they are set (set them, the same on every replica; otherwise the table
// holds the tokens in the clear, as the sessions table does).
//
// # Tables
//
// On first use the Coordinator looks whether its two tables exist and, only
// if one is missing, creates them (Schema) under a transaction-level
// advisory lock, with a lock_timeout (5 s) and statement_timeout (15 s) of
// its own, so that replicas starting together do not collide and a lock
// held on the schema does not hang it. A role without CREATE works when
// the tables were created by a migration and granted to it (SELECT,
// INSERT, UPDATE, DELETE). With WithManualSchema it never creates them.
// A missing table or privilege is ErrSchema, which matches
// core.ErrMisconfigured (the refresh answers 500, not 503: no retry mends
// it), logged once with the fix. WithTablePrefix names the tables (default
// "smartrefresh_records" and "smartrefresh_locks"), WithPrefix puts an app
// prefix in front of keys.
//
// # Connections and poolers
//
// Every operation is one statement on a connection of the pool, held only
// for that statement; WithMaxLocks is gone (deprecated, no effect). The
// Coordinator keeps no session state between statements (no advisory lock
// outlives one), so it does not need session pooling; with PgBouncer in
// transaction mode, mind pgx's prepared statements (untested here).
//
// # What it guarantees, and what it cannot
//
//   - Guaranteed, with one primary that keeps its rows: a refresh token is
//     sent once across the replicas, whatever happens to the lock (the
//     database down longer than the lease mid-call, the holder's
//     connections terminated): tested with a real PostgreSQL stopped for
//     1.7 s with a 1 s lease, and with pg_terminate_backend. A replica that
//     dies before sending frees the grant after the lease; one that dies
//     after sending delays the grant's refresh by at most RefreshTimeout +
//     1 s.
//   - A replica that crashes after sending the refresh token and before
//     recording the result leaves the outcome unknown; once its claim has
//     expired, the next holder, finding no record, sends the same refresh
//     token again (see core.ErrOutcomeUnknown). No client can avoid this.
//   - A failover to a replica that did not receive the latest rows
//     (asynchronous replication) can lose a claim or the record of a
//     redemption made just before it; so can a restore from a backup.
//   - The claim's expiry runs on the database's clock: a clock that jumps
//     on the database host can end a claim early.
//
// Replicas must share the Config that shapes what they store: SessionKey,
// EncryptionKeys and the session manager's Lifetime.
package pgcoord
