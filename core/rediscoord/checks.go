package rediscoord

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ACLCommands are the commands the Coordinator sends, as a Redis ACL grants
// them: GET, SET (with NX and PX), and the scripts (EVALSHA, and EVAL when
// Redis does not have them yet) with the commands they run (GET, SET,
// PEXPIRE, DEL). HELLO and CLIENT are what go-redis sends when it connects;
// redigo needs neither. CONFIG and INFO are optional: the eviction-policy
// check at first use reads one of them, and says so when it may not.
const ACLCommands = "+get +set +evalsha +eval +pexpire +del"

// checkTimeout bounds the look at Redis's eviction policy.
const checkTimeout = 5 * time.Second

// checkEviction looks, once per Coordinator and in the background, at
// Redis's maxmemory-policy, and logs a warning when Redis may evict the
// Coordinator's keys: every policy but noeviction can, since every key the
// Coordinator writes has a TTL. A claim or a lock evicted mid-call is what
// no client can survive (see the package documentation).
func (c *Coordinator) checkEviction() {
	c.checkOnce.Do(func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
			defer cancel()
			policy, err := c.evictionPolicy(ctx)
			switch {
			case err != nil:
				c.logger.Info("rediscoord: could not read Redis's maxmemory-policy (CONFIG GET and INFO refused or failed); make sure it is noeviction", "error", err)
			case policy != "noeviction":
				c.logger.Warn("rediscoord: Redis's maxmemory-policy lets it evict the Coordinator's keys; an evicted claim can let a refresh token be sent twice: set maxmemory-policy noeviction on this Redis",
					"maxmemory-policy", policy)
			}
			c.checked.Store(true)
		}()
	})
}

// evictionPolicy returns Redis's maxmemory-policy: CONFIG GET, or INFO
// memory when the user may not run CONFIG.
func (c *Coordinator) evictionPolicy(ctx context.Context) (string, error) {
	reply, err := c.client.do(ctx, "CONFIG", "GET", "maxmemory-policy")
	if err == nil {
		switch r := reply.(type) {
		case []any: // RESP2: name, value
			if len(r) == 2 {
				return replyString(r[1]), nil
			}
		case map[any]any: // RESP3
			for _, v := range r {
				return replyString(v), nil
			}
		case map[string]string:
			return r["maxmemory-policy"], nil
		}
	}
	info, ierr := c.client.do(ctx, "INFO", "memory")
	if ierr != nil {
		if err == nil {
			err = ierr
		}
		return "", err
	}
	for line := range strings.SplitSeq(replyString(info), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no maxmemory_policy in INFO memory")
}

func replyString(v any) string {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// permissionError logs err as an error when Redis refused the command to
// the Coordinator's user (an ACL without a command the Coordinator needs:
// see the package documentation), and reports whether it did.
func (c *Coordinator) permissionError(err error) bool {
	// NOPERM for a command sent; a script's refused command is an ERR
	// ("The user executing the script can't run this command").
	if err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't run this command") {
		return false
	}
	c.logger.Error("rediscoord: Redis refused a command the Coordinator needs: give its user the commands the package documentation lists", "error", err)
	return true
}
