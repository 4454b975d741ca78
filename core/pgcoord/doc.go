// Package pgcoord implements core.Coordinator on PostgreSQL, with pgx v5
// (pgxpool), so that the replicas of an app whose scs sessions live in
// PostgreSQL (scs's pgxstore) never redeem a refresh token twice between
// them, without adding Redis. It can share the app's *pgxpool.Pool.
//
// # The lock
//
// Lock takes a session-level advisory lock (pg_try_advisory_lock, tried
// again every retry interval while another session holds it) on one
// connection acquired from the pool, and keeps that connection out of the
// pool for the whole refresh. unlock calls pg_advisory_unlock on the same
// connection before it goes back to the pool (or closes it, if that
// fails). A process that crashes holding a lock loses its connection, and
// the server frees the lock at once: no lease to wait out.
//
// A restart (or failover) of the server ends every session, and so frees
// every advisory lock, including that of a holder that is alive and in its
// token call; another replica could then take the lock and, finding no
// record yet, redeem the same refresh token. So a holder also writes a
// claim row (key, a random holder value, the server's start time
// pg_postmaster_start_time, an expiry a lease ahead) which it extends every
// renew interval, through any connection, while it lives. A new holder
// that gets the advisory lock takes the claim over only if it expired or
// was written since the server's last start (its holder's session has
// ended without a restart: the holder died). A claim from before a restart
// is honoured until its holder deletes it at unlock, or it expires a lease
// after its holder stopped extending it.
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
// The Coordinator creates its two tables on first use, under a
// transaction-level advisory lock so that replicas starting together do
// not collide. With WithManualSchema it does not: run the statements of
// Schema in your migrations (the role then needs no CREATE privilege).
// WithTablePrefix names them (default "smartrefresh_records" and
// "smartrefresh_locks"), WithPrefix puts an app prefix in front of keys.
//
// # Connections
//
// Each lock holds one connection of the pool for the length of a token
// call. A Coordinator holds at most WithMaxLocks locks at once (default
// half the pool's MaxConns), so that the records and the app's sessions
// always have connections left; size the pool (pool_max_conns) for it.
//
// # PgBouncer and other poolers
//
// Session advisory locks belong to a server session. PgBouncer in
// transaction (or statement) pooling mode hands each transaction to
// whichever server connection is free, so a lock taken in one statement
// is held by a server session the next statement may not run on, and may
// be "released" by another client's statement: the lock protects nothing.
// With such a pooler, give the Coordinator a pool of its own that connects
// to PostgreSQL directly, or through a PgBouncer pool in session mode (the
// app's other queries may keep using transaction mode), or use
// core/rediscoord.
//
// # What it cannot guarantee
//
//   - A replica that crashes after sending the refresh token and before
//     recording the result leaves the outcome unknown; the next holder,
//     finding no record, sends the same refresh token again (see
//     core.ErrOutcomeUnknown). No client can avoid this.
//   - A holder whose connection alone is ended while its process lives
//     (pg_terminate_backend, idle_session_timeout, a proxy's idle timeout
//     shorter than a token call) loses its lock at once: without a restart
//     of the server, nothing tells it from a crash. The loss is logged. Do
//     not set idle_session_timeout for the app's role.
//   - A failover to a replica that did not receive the latest records
//     (asynchronous replication) can lose the record of a redemption made
//     just before it.
//
// Replicas must share the Config that shapes what they store: SessionKey,
// EncryptionKeys and the session manager's Lifetime.
package pgcoord
