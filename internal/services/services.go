// Package services decides what a test does when a server it needs (Redis,
// PostgreSQL, Chromium) is absent: skip, with one line saying how to run
// it, or, when SMARTREFRESH_REQUIRE_SERVICES=1 (bash .ci/run sets it),
// fail, so that a run that was meant to test against real servers cannot
// pass without them.
package services

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv names the setting that turns a missing server into a failure.
const RequireEnv = "SMARTREFRESH_REQUIRE_SERVICES"

// Required reports whether RequireEnv is set to 1.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Missing skips tb, or fails it when Required, with the message
// format and args make.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		tb.Fatalf("%s (%s=1: a missing server is a failure)", msg, RequireEnv)
	}
	tb.Skip(msg)
}
