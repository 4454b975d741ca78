package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSelf runs the self-contained mode for 2 s with 1 s access tokens:
// the sessions are refreshed a few times each, and no refresh token may be
// sent twice.
func TestSelf(t *testing.T) {
	var out bytes.Buffer
	rep, err := run(t.Context(), []string{
		"-self", "-sessions", "5", "-concurrency", "3", "-duration", "2s", "-token-ttl", "1s",
	}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.reuses != 0 || !strings.Contains(out.String(), "refresh-token reuses: 0\n") {
		t.Errorf("refresh-token reuses: %d, want 0", rep.reuses)
	}
	if rep.tokenCalls < 5 {
		t.Errorf("%d token calls in 2 s of 1 s tokens for 5 sessions, want at least one per session", rep.tokenCalls)
	}
	if rep.refreshes < 1 || rep.refreshes > rep.tokenCalls {
		t.Errorf("the sessions report %d refreshes for %d token calls", rep.refreshes, rep.tokenCalls)
	}
	if !rep.ok() {
		t.Errorf("the run failed: %d errors (%v), statuses %v", rep.errors, rep.firstError, rep.status)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://example.com:8080"},
		{"-url", "http://10.0.0.1:8080"},
		{"-url", "ftp://127.0.0.1"},
		{"-sessions", "0"},
		{"-sessions", "1000", "-concurrency", "3"},
		{"-duration", "2h"},
		{"-self", "-token-ttl", "500ms"},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	for _, args := range [][]string{
		{},
		{"-url", "http://localhost:9000/"},
		{"-url", "http://[::1]:8080"},
		{"-self", "-sessions", "100", "-concurrency", "20"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err != nil {
			t.Errorf("parseFlags(%q): %v", args, err)
		}
	}
}
