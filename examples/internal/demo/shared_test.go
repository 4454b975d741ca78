package demo

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestParseFlagsSharedStore(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		redis, pg     string
		wantErrSubstr string
	}{
		{args: nil},
		{args: []string{"-redis", "127.0.0.1:6379"}, redis: "127.0.0.1:6379"},
		{args: []string{"-postgres", "postgres://app@db/app"}, pg: "postgres://app@db/app"},
		{args: []string{"-redis", "r:6379", "-postgres", "postgres://db/app"}, wantErrSubstr: "give one"},
	} {
		c, err := ParseFlags("demo", tc.args, env(""), io.Discard)
		if tc.wantErrSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
				t.Errorf("%v: error %v, want one with %q", tc.args, err, tc.wantErrSubstr)
			}
			continue
		}
		if err != nil || c.RedisAddr != tc.redis || c.PostgresURL != tc.pg {
			t.Errorf("%v: redis %q postgres %q err %v", tc.args, c.RedisAddr, c.PostgresURL, err)
		}
	}
}

// OpenShared: nothing without a flag; an unreachable engine is an error
// that names no password.
func TestOpenSharedErrors(t *testing.T) {
	ctx := context.Background()
	if s, err := OpenShared(ctx, Config{}); s != nil || err != nil {
		t.Errorf("OpenShared without -redis or -postgres = %v, %v", s, err)
	}
	for _, cfg := range []Config{
		{RedisAddr: "127.0.0.1:1"},
		{PostgresURL: "postgres://app:s3cr3t-pw@127.0.0.1:1/app?connect_timeout=2"},
		{PostgresURL: "postgres://app:s3cr3t-pw@127.0.0.1:1/app?connect_timeout=notanumber"},
	} {
		s, err := OpenShared(ctx, cfg)
		if err == nil {
			s.Close()
			t.Errorf("OpenShared(redis %q, postgres set %v) succeeded with nothing listening", cfg.RedisAddr, cfg.PostgresURL != "")
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
