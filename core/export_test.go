package core

import (
	"context"
	"time"
)

// SetSleep replaces the waits between retries of r, so that tests need not
// sleep.
func SetSleep(r *Refresher, sleep func(context.Context, time.Duration) error) { r.sleep = sleep }

// ResolveFHIRUser exposes resolveFHIRUser to the tests.
var ResolveFHIRUser = resolveFHIRUser
