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
// makes the token call, then records the result before unlocking. A replica
// that later meets the redeemed refresh token, in a concurrent request or
// in a stale session copy that a slow request wrote back, finds the record
// and uses the grant's newer token without a token call.
//
// # Keys
//
// Core names the keys "smartrefresh:lock:<h>" and "smartrefresh:redeemed:<h>",
// h being the hex SHA-256 of the refresh token; WithPrefix puts an app
// prefix in front of them. A lock holds a random value; a redemption record
// holds the grant's newest token, sealed with Config.EncryptionKeys when
// they are set (set them, the same on every replica: otherwise Redis holds
// the tokens in the clear, and a replica that cannot open another's record
// fails with core.ErrSharedLedger). Records expire with the session
// Lifetime.
//
// # The lock
//
// Lock is SET key <random value> NX PX <lease>, tried again every retry
// interval (with jitter) until it succeeds or the refresh's context ends
// (Config.RefreshTimeout). While held, a goroutine extends the lease every
// renew interval (a third of the lease by default) with a script that acts
// only if the lock still holds this holder's value, so the lock stays held
// however long the token call takes: the bug of a lease that expires during
// a slow token call, letting a second replica redeem the same token
// (oauth2-proxy's session lock), cannot happen while the holder lives and
// reaches Redis. Unlock stops the renewal and deletes the lock with a
// compare-and-delete script: it never deletes a lock another holder took.
// A holder that crashed stops renewing, and its lock is free again after
// at most the lease (DefaultLease, 10 s).
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
// # What it cannot guarantee
//
//   - A replica that crashes after sending the refresh token and before
//     recording the result (or that stops while Redis is down and its
//     record is still pending) leaves the refresh token's outcome unknown. After its lease, another
//     replica, finding no record, sends the same refresh token again; a
//     strict server then revokes the grant and the user logs in again. This
//     is core.ErrOutcomeUnknown across processes: no client can know whether
//     the server used a token whose answer it never got.
//   - The lock is a lease, not a fence. A holder that cannot reach Redis for
//     a whole lease, or is paused longer than that (a stopped VM, SIGSTOP),
//     loses the lock while it may still send its token request; the token
//     endpoint takes no fencing token to refuse it. The Coordinator logs the
//     loss but cannot stop the holder. The lease bounds both this risk and
//     how long a crashed holder blocks its grant's refreshes. Everything the
//     lock protects (the look-up of a record, the token call with its
//     retries) runs within Config.RefreshTimeout, counted from before the
//     lock was taken, and the record normally right after; so a lease longer than RefreshTimeout
//     (WithLease(cfg.RefreshTimeout + 5*time.Second)) does not depend on
//     the renewals at all, at the price of the refreshes of a grant whose
//     holder crashed failing as transient (503) for up to that long. The
//     default, 10 s renewed every 3.3 s, frees such a grant sooner.
//   - One Redis primary is the source of truth. A failover with asynchronous
//     replication, a restart without persistence or an eviction can lose a
//     lock or a redemption record, and with it the guarantee for the
//     refreshes of that moment. Every key has a TTL, so any maxmemory-policy
//     but noeviction (Redis's default) may evict them: keep noeviction on
//     the Redis that holds them.
//
// Replicas must share the Config that shapes what they store: SessionKey,
// the session manager's Lifetime, and every key any of them encrypts with
// (in EncryptionKeys or DecryptionKeys; see core.Config.DecryptionKeys for
// rotating keys).
package rediscoord
