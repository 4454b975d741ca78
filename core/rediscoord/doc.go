// Package rediscoord implements core.Coordinator on Redis, so that the
// replicas of an app (several processes behind a load balancer, sharing one
// scs session store) never redeem a refresh token twice between them. New
// takes a redigo *redis.Pool (the one of scs's redisstore); NewGoRedis
// takes a go-redis v9 client (the one of scs's goredisstore, a Cluster or
// a Sentinel failover client). Both use the same keys and scripts, so
// replicas on either client work together. Each script reads and writes
// one key, so Redis Cluster runs it on that key's node; the tests run on a
// single node.
//
// A core.Refresher keeps its promise (a refresh token is sent once) within
// its process with a single flight and a ledger of redeemed refresh tokens.
// Across replicas both must be shared: with Config.Coordinator set, a
// refresh takes the Coordinator's lock named after its refresh token, looks
// for another replica's record of its redemption, and only if there is none
// makes the token call (claimed for its whole RefreshTimeout, see below),
// then records the result before unlocking. A replica
// that later meets the redeemed refresh token, in a concurrent request or
// in a stale session copy that a slow request wrote back, finds the record
// and uses the grant's newer token without a token call.
//
// # Keys
//
// Core names the keys "smartrefresh:lock:<h>", "smartrefresh:sending:<h>"
// (the claim) and "smartrefresh:redeemed:<h>", h being the hex SHA-256 of the refresh token; WithPrefix puts an app
// prefix in front of them. A lock holds a random value; a redemption record
// holds the grant's newest token, sealed with Config.EncryptionKeys when
// they are set (set them, the same on every replica: otherwise Redis holds
// the tokens in the clear, and a replica that cannot open another's record
// fails with core.ErrSharedLedger). Records expire with the session
// Lifetime.
//
// # The lock and the claim
//
// Lock is SET key <random value> NX PX <lease>, tried again every retry
// interval (with jitter) until it succeeds or the refresh's context ends
// (Config.RefreshTimeout). While held, a goroutine extends the lease every
// renew interval (a third of the lease by default) with a script that acts
// only if the lock still holds this holder's value. Unlock stops the
// renewal and deletes the lock with a compare-and-delete script: it never
// deletes a lock another holder took. A holder that crashed stops
// renewing, and its lock is free again after at most the lease
// (DefaultLease, 10 s).
//
// The lock is for liveness; safety does not depend on it. Just before the
// token call, the holder claims the refresh token: Claim is SET
// "smartrefresh:sending:<h>" <random value> NX PX <RefreshTimeout + 1 s>,
// never extended. If the claim cannot be written, nothing is sent. A
// replica that takes the lock while a claim lives (the holder's lease ran
// out while Redis was paused or away, or its lock key was deleted or
// evicted, or a user without PEXPIRE could not renew it) waits for that
// call's record, or for the claim to expire: so a claim on a refresh token
// outlives the token call it protects, and once a replica has sent it no
// other replica sends it before that call's outcome is known or its
// RefreshTimeout has certainly passed. The claim is released (by the
// compare-and-delete script) once the outcome is known and recorded; when
// the outcome is unknown it stays until it expires.
//
// # Commands (ACL)
//
// The Coordinator sends GET, SET (with NX and PX), EVALSHA and EVAL (its
// scripts, whose commands Redis checks against the ACL too: GET, SET,
// PEXPIRE, DEL), and nothing else on the keys; ACLCommands lists them as
// an ACL grants them:
//
//	ACL SETUSER app on >password ~smartrefresh:* -@all +get +set +evalsha +eval +pexpire +del
//
// (with WithPrefix, ~<prefix>smartrefresh:*). Add +ping for a redigo pool's
// TestOnBorrow, and the commands scs's store needs on its own keys. At
// first use the Coordinator reads maxmemory-policy with CONFIG GET (or INFO
// memory); without either it says so at INFO level and goes on. A command
// Redis refuses (NOPERM) is logged as an error, also during the lease
// renewals. The tests run the Coordinator as a user with exactly these
// commands, and as one without PEXPIRE (its renewals fail; the claims
// keep the promise).
//
// # Redis restarts
//
// After a restart every connection a pool holds is dead, while Redis may
// already answer. With redigo, each call that fails on a pooled connection other than
// with an error reply of Redis is tried once more at once on a connection
// dialed afresh with the pool's Dial. A failed lease renewal is tried
// again with backoff (10 ms doubling, at most half the renew interval), not
// only at the next tick, and a renewal also takes the lock back if it is
// gone (expired while Redis was away, or lost by a restart without
// persistence) and nobody else took it. A failed unlock is
// retried in the background until the lease would have run out. Core, for
// its part, retries the record of a redemption with backoff and keeps the
// lock until the record is made. Give the pool a TestOnBorrow that PINGs,
// so that the pool drops its dead connections at once (scs's redisstore on
// the same pool recovers then too), and run Redis with persistence (AOF or
// RDB), so that locks and records survive a restart.
//
// # What it guarantees, and what it cannot
//
//   - Guaranteed, with one Redis primary that keeps its keys: a refresh
//     token is sent once across the replicas, whatever happens to the lock
//     (lease run out during a pause or an outage longer than the lease,
//     key deleted or evicted, renewals refused): tested with a real
//     redis-server stopped with SIGSTOP for 3.5 leases, the lock key
//     deleted, the lock key evicted under maxmemory-policy volatile-ttl, a
//     user without PEXPIRE. A replica that dies before sending frees the
//     grant after the lease; one that dies after sending delays the
//     grant's refresh by at most RefreshTimeout + 1 s (that request's
//     answer is unknown; the next replica then sends the token once: the
//     lost-answer case below).
//   - A replica that crashes after sending the refresh token and before
//     recording the result leaves the refresh token's outcome unknown.
//     Once its claim has expired, another replica, finding no record,
//     sends the same refresh token again; a strict server then revokes the
//     grant and the user logs in again. This is core.ErrOutcomeUnknown
//     across processes: no client can know whether the server used a token
//     whose answer it never got.
//   - What no client can survive: a Redis that loses the claim while it
//     lives. FLUSHALL or FLUSHDB, a restart without persistence, a failover
//     to a replica that had not received it (asynchronous replication),
//     or eviction (any maxmemory-policy but noeviction: every key here has
//     a TTL, so volatile-* policies evict them too). The Coordinator warns
//     at first use when maxmemory-policy is not noeviction; keep
//     noeviction and persistence (AOF or RDB) on the Redis that holds its
//     keys. Redlock is not supported.
//   - The claim's expiry runs on Redis's clock, the token call's deadline
//     on the app's: a clock that jumps on the Redis host (not one that
//     runs at the same rate) can end a claim early.
//
// Replicas must share the Config that shapes what they store: SessionKey,
// the session manager's Lifetime, and every key any of them encrypts with
// (in EncryptionKeys or DecryptionKeys; see core.Config.DecryptionKeys for
// rotating keys).
package rediscoord
