package core

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"net/http/httptrace"
	"sync"
	"time"
)

// Default values of the RetryPolicy fields.
const (
	DefaultRetryAttempts  = 3
	DefaultRetryBaseDelay = 200 * time.Millisecond
	DefaultRetryMaxDelay  = 2 * time.Second
)

// RetryPolicy bounds the retries of a token request that the server
// certainly did not process. The zero value means the defaults; a
// MaxAttempts of 1 disables retries.
//
// Only requests that cannot have used the refresh token are retried: those
// that failed before a connection to the token endpoint existed (DNS, TCP
// connect or TLS handshake errors), those the server refused with 429 Too
// Many Requests or with 503 Service Unavailable and a Retry-After (a bare
// 503 may come from a proxy that lost the answer), and a client assertion
// that could not be signed. A request that was sent but whose answer was lost (a
// timeout or a reset after the request went out, 500, 502, 504, a broken
// answer) is not retried by this policy: the server may have rotated the
// refresh token, and sending it again would be a reuse that revokes the
// grant. Such a failure matches ErrOutcomeUnknown; the refresh then resends
// the token once, promptly (Config.ResendAfter), for servers with a reuse
// grace window; the stored token is kept, and the grant backs off before
// its next try.
//
// All attempts and waits of one refresh fit in Config.RefreshTimeout: no
// wait runs past it.
type RetryPolicy struct {
	// MaxAttempts is the most token requests one refresh makes
	// (DefaultRetryAttempts when zero). 1 disables retries.
	MaxAttempts int
	// BaseDelay is the wait before the first retry (DefaultRetryBaseDelay
	// when zero). It doubles with each further retry; each wait is drawn at
	// random between half of it and all of it.
	BaseDelay time.Duration
	// MaxDelay caps each wait (DefaultRetryMaxDelay when zero). A server
	// that asks, with Retry-After, for a longer wait ends the retries: the
	// error, with its Retry-After, goes to the app.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultRetryAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultRetryBaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultRetryMaxDelay
	}
	return p
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 0:
		return &ConfigError{Field: "Retry.MaxAttempts", Reason: "must not be negative"}
	case p.BaseDelay < 0:
		return &ConfigError{Field: "Retry.BaseDelay", Reason: "must not be negative"}
	case p.MaxDelay < 0:
		return &ConfigError{Field: "Retry.MaxDelay", Reason: "must not be negative"}
	}
	return nil
}

// backoff returns the wait before attempt+1, after attempt failed: BaseDelay
// doubled for each earlier retry, capped at MaxDelay, with jitter.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d/2 + rand.N(d/2+1)
}

// requestTokenWithRetry is requestToken with the retries of Config.Retry.
// ctx carries the refresh's deadline (Config.RefreshTimeout); no attempt
// or wait runs past it. A failure whose outcome is unknown is returned at
// once, marked with ErrOutcomeUnknown.
func (r *Refresher) requestTokenWithRetry(ctx context.Context, refreshToken string) (*Token, error) {
	p := r.cfg.Retry
	for attempt := 1; ; attempt++ {
		trace := &sendTrace{}
		tok, err := r.requestToken(httptrace.WithClientTrace(ctx, trace.clientTrace()), refreshToken)
		if err == nil {
			return tok, nil
		}
		if !refused(err) && !trace.unsent(err) {
			return nil, markUnknown(err)
		}
		if attempt >= p.MaxAttempts {
			return nil, err
		}
		wait := p.backoff(attempt)
		if ra, ok := RetryAfter(err); ok {
			if ra > p.MaxDelay {
				return nil, err
			}
			wait = max(wait, ra)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return nil, err
		}
		r.cfg.Logger.WarnContext(ctx, "smartrefresh: token request not processed, retrying",
			"attempt", attempt, "wait", wait, "error", err)
		if r.wait(ctx, wait) != nil {
			return nil, err
		}
	}
}

// wait sleeps for d or until ctx is done. Tests replace it (Refresher.sleep).
func (r *Refresher) wait(ctx context.Context, d time.Duration) error {
	if r.sleep != nil {
		return r.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refused reports whether the token endpoint declined the request without
// processing it: 429 Too Many Requests, or 503 Service Unavailable with
// Retry-After (see TokenError.refused).
func refused(err error) bool {
	var te *TokenError
	return errors.As(err, &te) && te.refused()
}

// markUnknown marks a failure to get an answer to a request that was sent
// with ErrOutcomeUnknown. Error answers and broken answers say themselves
// whether their outcome is unknown (TokenError, ResponseError).
func markUnknown(err error) error {
	var te *transientError
	if errors.As(err, &te) {
		return &outcomeUnknownError{err: err}
	}
	return err
}

// outcomeUnknownError is a token request that was sent, but whose answer
// was lost: a timeout, a connection reset or a body that could not be read.
type outcomeUnknownError struct{ err error }

func (e *outcomeUnknownError) Error() string {
	return e.err.Error() + " (the request was sent; whether the server processed it is unknown)"
}

func (e *outcomeUnknownError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.err} }

// sendTrace records, through net/http/httptrace, how far a token request
// got, to tell a request that never left (safe to send again) from one
// whose answer was lost (not safe: the server may have rotated the refresh
// token).
//
// A request certainly did not reach the server when no connection was
// obtained for it and the failure was one of dialing: DNS, TCP connect or
// TLS handshake. Once a connection exists, even a write error may come after
// the server read the whole request, so that counts as sent. (http.Transport
// itself re-sends a POST only when it wrote nothing of it.) A RoundTripper
// that reports no trace events is judged by its error alone: only a
// *net.OpError of op "dial" or a *net.DNSError counts as not sent.
type sendTrace struct {
	mu         sync.Mutex
	connected  bool
	dialFailed bool
}

func (s *sendTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSDone: func(info httptrace.DNSDoneInfo) { s.failed(info.Err) },
		ConnectDone: func(_, _ string, err error) {
			s.failed(err)
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) { s.failed(err) },
		GotConn: func(httptrace.GotConnInfo) {
			s.mu.Lock()
			s.connected = true
			s.mu.Unlock()
		},
	}
}

func (s *sendTrace) failed(err error) {
	if err != nil {
		s.mu.Lock()
		s.dialFailed = true
		s.mu.Unlock()
	}
}

// unsent reports whether the request that failed with err certainly never
// reached the server.
func (s *sendTrace) unsent(err error) bool {
	if errors.As(err, new(*AssertionError)) {
		return true // nothing was sent
	}
	if !errors.As(err, new(*transientError)) {
		return false
	}
	s.mu.Lock()
	connected, dialFailed := s.connected, s.dialFailed
	s.mu.Unlock()
	if connected {
		return false
	}
	if dialFailed {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.As(err, new(*net.DNSError))
}
