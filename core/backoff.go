package core

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// DefaultResendAfter is Config.ResendAfter's default: how long after a
// refresh whose answer was lost the refresh token is sent once more.
const DefaultResendAfter = time.Second

// The backoff of a grant whose refresh failed (transient): its next token
// call waits backoffBase after the first failure, twice as long after each
// further one, at most backoffMax, each wait drawn between half and all of
// it, and never shorter than the server's Retry-After (up to backoffMax).
// In a long outage a grant therefore makes about one token call a
// minute, and at most 10 in its first two minutes (the first call and its
// resend included), however many requests its session makes.
const (
	backoffBase = time.Second
	backoffMax  = time.Minute
)

// BackoffError is the error of a refresh that was not tried because the
// grant's last refresh failed moments ago (the token endpoint is down or
// failing): the grant backs off rather than sending its refresh token on
// every request. Token hands out the old access token while it is valid;
// after that a request gets this error, which matches ErrTransient (503)
// and carries RetryAfter, when the grant may try again. Nothing was sent.
type BackoffError struct {
	// RetryAfter is how long until the grant's next token call may go.
	RetryAfter time.Duration
	// Err is the failure of the grant's last refresh.
	Err error
}

func (e *BackoffError) Error() string {
	return "smartrefresh: token endpoint failing, next refresh of this grant in " +
		strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)) + "s; last failure: " + e.Err.Error()
}

// Is makes a BackoffError match ErrTransient only: nothing was sent, so
// it is not ErrOutcomeUnknown, whatever the last failure was.
func (e *BackoffError) Is(target error) bool { return target == ErrTransient }

// backoffs holds the backoff of every grant whose last refresh failed, by
// the fingerprint of the refresh token it would send. An entry goes when
// the grant refreshes, and is swept once its wait is long over.
type backoffs struct {
	mu        sync.Mutex
	m         map[fingerprint]*backoff
	nextSweep time.Time
}

type backoff struct {
	failures int
	until    time.Time // no token call before
	last     error
}

// check returns the error of a refresh of fp that must not be tried yet,
// or nil.
func (b *backoffs) check(fp fingerprint, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.m[fp]
	if e == nil || !now.Before(e.until) {
		return nil
	}
	return &BackoffError{RetryAfter: e.until.Sub(now), Err: e.last}
}

// failing reports whether fp's last refresh failed: then a lost answer is
// not resent at once (the grant is in an outage, not a blip).
func (b *backoffs) failing(fp fingerprint) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[fp] != nil
}

// failed records a failed refresh of fp at now, and returns how long the
// grant waits before its next token call.
func (b *backoffs) failed(fp fingerprint, now time.Time, err error) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[fingerprint]*backoff)
	}
	if now.After(b.nextSweep) {
		for k, e := range b.m {
			if now.Sub(e.until) > 2*backoffMax {
				delete(b.m, k)
			}
		}
		b.nextSweep = now.Add(backoffMax)
	}
	e := b.m[fp]
	if e == nil {
		e = &backoff{}
		b.m[fp] = e
	}
	e.failures++
	d := backoffBase
	for i := 1; i < e.failures && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	d = d/2 + rand.N(d/2+1)
	if ra, ok := RetryAfter(err); ok {
		d = max(d, min(ra, backoffMax)) // at least as long as the server asked
	}
	e.until, e.last = now.Add(d), err
	return d
}

// backingOff is the error of the refresh that failed and made its grant
// back off: err as it was (class, ErrOutcomeUnknown, *TokenError), with
// the backoff as its RetryAfter hint unless the server gave one.
type backingOff struct {
	err        error
	retryAfter time.Duration
}

func (e *backingOff) Error() string { return e.err.Error() }
func (e *backingOff) Unwrap() error { return e.err }

// succeeded ends fp's backoff: its refresh got an answer.
func (b *backoffs) succeeded(fp fingerprint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, fp)
}

// backsOff reports whether a refresh that failed with err makes its grant
// back off: a transient failure of the token endpoint, not one of this
// process (a full queue of MaxConcurrentRefreshes, a refresh that ran out
// of time waiting for its turn).
func backsOff(err error) bool {
	return errors.Is(err, ErrTransient) && !errors.Is(err, ErrOverloaded) && !errors.Is(err, ErrReauthRequired)
}
