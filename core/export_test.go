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

// SetLogoutLookedUp makes r's Logout call f after it looked up the grant's
// newest token and before it revokes it, so that a test can finish a
// refresh in between.
func SetLogoutLookedUp(r *Refresher, f func()) { r.lookedUp = f }

// SetShareWithin sets how long r's refreshes wait for their record to be
// made at the Coordinator before a goroutine takes over.
func SetShareWithin(r *Refresher, d time.Duration) { r.shareWithin = d }

// StatusCode and Class expose the status and class of an error to the
// tests.
func StatusCode(err error) int { return statusCode(err) }
func Class(err error) error    { return class(err) }

// SetFlightHooks makes r call joined after each caller joined a flight
// (started it or found it running) and redeeming when a flight starts its
// redemption, before any deadline of it runs: a test can hold the flight
// until all its callers joined, however slowly they are scheduled.
func SetFlightHooks(r *Refresher, joined, redeeming func()) {
	r.joined, r.redeeming = joined, redeeming
}

// Searchset exposes searchset, the large Bundle of the benchmarks.
var Searchset = searchset

// ProcessCPU exposes processCPU, the CPU time the benchmarks report.
var ProcessCPU = processCPU
