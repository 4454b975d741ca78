package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultRefreshQueueTimeout is how long a refresh waits for one of
// Config.MaxConcurrentRefreshes slots when Config.RefreshQueueTimeout is
// zero.
const DefaultRefreshQueueTimeout = 5 * time.Second

// ErrOverloaded is matched, besides ErrTransient, by a refresh that found
// no free slot of Config.MaxConcurrentRefreshes within
// Config.RefreshQueueTimeout. Nothing was sent to the token endpoint, so
// the refresh token is still good, and the stored token is kept; the
// error is an *OverloadError that says when to come back (RetryAfter),
// and the middleware answers 503 with that Retry-After.
var ErrOverloaded = fmt.Errorf("%w: too many refreshes at once (Config.MaxConcurrentRefreshes); nothing was sent", ErrTransient)

// OverloadError is a refresh refused because every slot of
// Config.MaxConcurrentRefreshes stayed busy for Config.RefreshQueueTimeout.
// It matches ErrOverloaded and ErrTransient.
type OverloadError struct {
	// Waited is how long the refresh waited for a slot.
	Waited time.Duration
	// RetryAfter is when the caller should try again: between one and two
	// queue timeouts, at random so that refused callers do not all come
	// back at once, and at least one second.
	RetryAfter time.Duration
}

func (e *OverloadError) Error() string {
	return ErrOverloaded.Error() + " (waited " + e.Waited.Round(time.Millisecond).String() +
		"; retry after " + strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)) + " s)"
}

func (e *OverloadError) Unwrap() error { return ErrOverloaded }

// slots caps the token calls in flight (Config.MaxConcurrentRefreshes).
// A refresh queues for a slot (first come, first served) for at most
// queue, on a deadline of its own: the wait never eats into the token
// call's RefreshTimeout, so a call granted its slot late still has its
// whole budget, and a wait that runs out fails before anything is sent.
type slots struct {
	sem   *semaphore.Weighted
	queue time.Duration
}

func newSlots(n int, queue time.Duration) *slots {
	if n <= 0 {
		return nil
	}
	return &slots{sem: semaphore.NewWeighted(int64(n)), queue: queue}
}

// acquire waits for a slot, at most s.queue, and returns the function that
// frees it. A nil *slots (no cap) returns at once.
func (s *slots) acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	if s.sem.TryAcquire(1) {
		return func() { s.sem.Release(1) }, nil
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, s.queue)
	defer cancel()
	if err := s.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil && !errors.Is(context.Cause(wctx), context.DeadlineExceeded) {
			return nil, context.Cause(ctx)
		}
		return nil, &OverloadError{Waited: time.Since(start), RetryAfter: s.retryAfter()}
	}
	return func() { s.sem.Release(1) }, nil
}

// retryAfter is the Retry-After of a refused refresh: the queue was at
// least s.queue long, so come back after one to two of it.
func (s *slots) retryAfter() time.Duration {
	d := s.queue + rand.N(s.queue+1)
	return max(d, time.Second)
}
