package rediscoord_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/smartrefresh/smartrefresh/core/rediscoord"
)

// TestMain says in one line when the Redis tests will not run, rather than
// letting a parent test report PASS for subtests that all skipped.
func TestMain(m *testing.M) {
	if os.Getenv(rediscoord.AddrEnv) == "" {
		const addr = "127.0.0.1:6390"
		if conn, err := redis.DialContext(context.Background(), "tcp", addr); err == nil {
			conn.Close()
			say(fmt.Sprintf("rediscoord: %s is unset: the Redis tests run against %s", rediscoord.AddrEnv, addr))
		} else {
			say(fmt.Sprintf("rediscoord: the Redis tests are SKIPPED: set %s (bash .ci/run starts a Redis)", rediscoord.AddrEnv))
		}
	}
	os.Exit(m.Run())
}

// say prints line where the person running the tests sees it: go test
// shows nothing a passing package prints (without -v) when it tests a
// list of packages, as in go test ./..., so the line goes to the terminal
// when there is one, and to stdout otherwise.
func say(line string) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(tty, line)
		tty.Close()
		return
	}
	fmt.Println(line)
}
