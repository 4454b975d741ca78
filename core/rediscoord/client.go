package rediscoord

import (
	"context"
	"errors"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
)

// client is what the Coordinator needs of a Redis client: a script on one
// key (so that Redis Cluster can run it), GET and SET PX. New gives it a
// redigo pool, NewGoRedis a go-redis client; the keys and scripts are the
// same.
type client interface {
	// eval runs s on key with args and returns its integer reply.
	eval(ctx context.Context, s *script, key string, args ...any) (int64, error)
	// get returns key's value, and false if there is none.
	get(ctx context.Context, key string) ([]byte, bool, error)
	// setPX sets key to value for ms milliseconds.
	setPX(ctx context.Context, key string, value []byte, ms int64) error
	// setNXPX sets key to value for ms milliseconds unless key exists,
	// and reports whether it did.
	setNXPX(ctx context.Context, key string, value []byte, ms int64) (bool, error)
	// do sends any other command and returns its reply.
	do(ctx context.Context, args ...any) (any, error)
}

// script is a Lua script of one key, loaded for either client.
type script struct {
	redigo  *redis.Script
	goredis *goredis.Script
}

func newScript(src string) *script {
	return &script{redigo: redis.NewScript(1, src), goredis: goredis.NewScript(src)}
}

var (
	renewScript   = newScript(renewSource)
	releaseScript = newScript(releaseSource)
)

// redigoClient is a client on a redigo pool.
type redigoClient struct{ pool *redis.Pool }

func (c *redigoClient) eval(ctx context.Context, s *script, key string, args ...any) (int64, error) {
	var n int64
	err := c.doRetry(ctx, func(conn redis.Conn) error {
		var err error
		n, err = redis.Int64(s.redigo.DoContext(ctx, conn, append([]any{key}, args...)...))
		return err
	})
	return n, err
}

func (c *redigoClient) get(ctx context.Context, key string) ([]byte, bool, error) {
	var b []byte
	err := c.doRetry(ctx, func(conn redis.Conn) error {
		var err error
		b, err = redis.Bytes(redis.DoContext(conn, ctx, "GET", key))
		return err
	})
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (c *redigoClient) setPX(ctx context.Context, key string, value []byte, ms int64) error {
	return c.doRetry(ctx, func(conn redis.Conn) error {
		_, err := redis.DoContext(conn, ctx, "SET", key, value, "PX", ms)
		return err
	})
}

func (c *redigoClient) setNXPX(ctx context.Context, key string, value []byte, ms int64) (bool, error) {
	var set bool
	err := c.doRetry(ctx, func(conn redis.Conn) error {
		reply, err := redis.DoContext(conn, ctx, "SET", key, value, "NX", "PX", ms)
		set = reply != nil
		return err
	})
	return set, err
}

func (c *redigoClient) do(ctx context.Context, args ...any) (any, error) {
	var reply any
	err := c.doOn(ctx, false, func(conn redis.Conn) error {
		var err error
		reply, err = redis.DoContext(conn, ctx, args[0].(string), args[1:]...)
		return err
	})
	return reply, err
}

// doRetry runs fn on a connection of the pool and, if that fails other than
// with an error reply of Redis, once more at once on a connection dialed
// afresh with the pool's Dial. After a Redis restart every connection the
// pool holds is dead (unless the pool tests them on borrow: TestOnBorrow),
// while Redis itself may already answer; a fresh connection reaches it.
func (c *redigoClient) doRetry(ctx context.Context, fn func(redis.Conn) error) error {
	err := c.doOn(ctx, false, fn)
	var reply redis.Error
	if err == nil || errors.Is(err, redis.ErrNil) || errors.As(err, &reply) || ctx.Err() != nil {
		return err
	}
	return c.doOn(ctx, true, fn)
}

func (c *redigoClient) doOn(ctx context.Context, fresh bool, fn func(redis.Conn) error) error {
	var (
		conn redis.Conn
		err  error
	)
	switch {
	case fresh && c.pool.DialContext != nil:
		conn, err = c.pool.DialContext(ctx)
	case fresh && c.pool.Dial != nil:
		conn, err = c.pool.Dial()
	default:
		conn, err = c.pool.GetContext(ctx)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// goredisClient is a client on a go-redis client: a single node, a
// Cluster, a Ring, or Sentinel's failover client. go-redis replaces dead
// connections and retries network failures itself; every operation here
// may be repeated safely (the scripts accept their own earlier effect).
type goredisClient struct{ c goredis.UniversalClient }

func (c *goredisClient) eval(ctx context.Context, s *script, key string, args ...any) (int64, error) {
	return s.goredis.Run(ctx, c.c, []string{key}, args...).Int64()
}

func (c *goredisClient) get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := c.c.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func (c *goredisClient) setPX(ctx context.Context, key string, value []byte, ms int64) error {
	return c.c.Do(ctx, "SET", key, value, "PX", ms).Err()
}

func (c *goredisClient) setNXPX(ctx context.Context, key string, value []byte, ms int64) (bool, error) {
	err := c.c.Do(ctx, "SET", key, value, "NX", "PX", ms).Err()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func (c *goredisClient) do(ctx context.Context, args ...any) (any, error) {
	return c.c.Do(ctx, args...).Result()
}
