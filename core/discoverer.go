package core

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Default values of the optional Discoverer fields.
const (
	DefaultDiscoveryTTL     = time.Hour
	DefaultDiscoveryTimeout = 10 * time.Second
)

// maxDiscoveryTTL caps how long a server's Cache-Control max-age can make
// a Discoverer keep a document.
const maxDiscoveryTTL = 24 * time.Hour

// wellKnownPath is where SMART servers publish their configuration,
// relative to the FHIR base URL.
const wellKnownPath = "/.well-known/smart-configuration"

// A Discoverer fetches SMART configurations and caches them. Concurrent
// calls for the same URL share one fetch. The zero value is ready to use;
// a Discoverer is safe for concurrent use.
type Discoverer struct {
	// HTTPClient makes the requests (http.DefaultClient when nil).
	HTTPClient *http.Client
	// TTL is how long a document is cached when its answer has no
	// Cache-Control max-age (DefaultDiscoveryTTL when zero; negative
	// disables the cache). A max-age, up to 24 hours, wins; no-store,
	// no-cache and max-age=0 keep the answer out of the cache. Errors are
	// never cached.
	TTL time.Duration
	// Timeout bounds each fetch (DefaultDiscoveryTimeout when zero).
	Timeout time.Duration
	// Now is the clock of the cache, for tests (time.Now when nil).
	Now func() time.Time

	mu      sync.Mutex
	cache   map[string]cachedConfiguration
	flights singleflight.Group
}

type cachedConfiguration struct {
	conf    *SMARTConfiguration
	expires time.Time
}

var defaultDiscoverer Discoverer

// Discover returns the SMART configuration of the FHIR server or issuer at
// fhirBaseOrIssuer, read from {fhirBaseOrIssuer}/.well-known/smart-configuration
// through a package-wide Discoverer with the default settings. See
// Discoverer.Discover.
func Discover(ctx context.Context, fhirBaseOrIssuer string) (*SMARTConfiguration, error) {
	return defaultDiscoverer.Discover(ctx, fhirBaseOrIssuer)
}

// Discover returns the SMART configuration of the FHIR server or issuer at
// fhirBaseOrIssuer (a URL that already ends in
// /.well-known/smart-configuration is used as it is). The URL must use
// https, except on a loopback host, and so must every endpoint the
// document of a non-loopback server names. The answer is read up to 1 MiB
// and decoded with ParseSMARTConfiguration. Failures are *DiscoveryError
// values, matching ErrDiscovery and either ErrTransient (unreachable,
// timeout, 429, 5xx) or ErrMisconfigured (404, not JSON, malformed, no
// token_endpoint, an http endpoint). A cancelled ctx stops the wait, not a
// fetch other callers share.
func (d *Discoverer) Discover(ctx context.Context, fhirBaseOrIssuer string) (*SMARTConfiguration, error) {
	u, err := wellKnownURL(fhirBaseOrIssuer)
	if err != nil {
		return nil, err
	}
	if c := d.cached(u); c != nil {
		return c, nil
	}
	ch := d.flights.DoChan(u, func() (any, error) {
		return d.fetch(context.WithoutCancel(ctx), u)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*SMARTConfiguration), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// wellKnownURL returns the smart-configuration URL of a FHIR base URL.
func wellKnownURL(base string) (string, error) {
	base = strings.TrimSpace(base)
	if err := checkEndpoint(base); err != nil {
		return "", &DiscoveryError{Reason: "FHIR base URL " + err.Error()}
	}
	u, _ := url.Parse(base) // checked
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", &DiscoveryError{Reason: "FHIR base URL must not have a query or fragment"}
	}
	if strings.HasSuffix(u.Path, wellKnownPath) {
		return u.String(), nil
	}
	return u.JoinPath(wellKnownPath).String(), nil
}

func (d *Discoverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// cached returns the cached document of u, if it is still fresh.
func (d *Discoverer) cached(u string) *SMARTConfiguration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.cache[u]; ok && d.now().Before(c.expires) {
		return c.conf
	}
	return nil
}

// store caches conf under u for ttl, and drops expired entries.
func (d *Discoverer) store(u string, conf *SMARTConfiguration, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache == nil {
		d.cache = make(map[string]cachedConfiguration)
	}
	for k, c := range d.cache {
		if !now.Before(c.expires) {
			delete(d.cache, k)
		}
	}
	d.cache[u] = cachedConfiguration{conf: conf, expires: now.Add(ttl)}
}

// fetch reads, checks and caches the document at u. It runs once per
// flight.
func (d *Discoverer) fetch(ctx context.Context, u string) (*SMARTConfiguration, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDiscoveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := d.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &DiscoveryError{URL: u, Reason: "bad URL", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, &DiscoveryError{URL: u, Reason: "request failed", Err: scrubURLError(err), transient: true}
	}
	defer resp.Body.Close()
	fail := func(reason string) error {
		return &DiscoveryError{URL: u, StatusCode: resp.StatusCode, Reason: reason,
			transient: resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500}
	}
	final := req.URL
	if resp.Request != nil {
		final = resp.Request.URL // after redirects
	}
	if err := checkEndpoint(final.String()); err != nil {
		return nil, fail("redirected to a URL that " + err.Error())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, &DiscoveryError{URL: u, StatusCode: resp.StatusCode, Reason: "reading answer", Err: err, transient: true}
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fail("not found (404): the server publishes no SMART configuration there; check the FHIR base URL")
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fail("server answered " + strconv.Itoa(resp.StatusCode))
	case len(body) > maxResponseBytes:
		return nil, fail("answer larger than 1 MiB")
	}
	conf, err := ParseSMARTConfiguration(body)
	if err != nil {
		de := err.(*DiscoveryError)
		de.URL, de.StatusCode = u, resp.StatusCode
		if de.Reason == notJSONObject {
			de.Reason += " (Content-Type " + strconv.Quote(limit(mediaType(resp.Header), 64)) + ")"
		}
		return nil, de
	}
	if !isLoopback(final.Hostname()) {
		if err := conf.checkHTTPS(); err != nil {
			return nil, fail(err.Error())
		}
	}
	conf.url = u
	d.store(u, conf, d.ttl(resp.Header))
	return conf, nil
}

// ttl returns how long to cache an answer with header h.
func (d *Discoverer) ttl(h http.Header) time.Duration {
	ttl := d.TTL
	if ttl == 0 {
		ttl = DefaultDiscoveryTTL
	}
	for _, dir := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, value, _ := strings.Cut(strings.ToLower(strings.TrimSpace(dir)), "=")
		switch name {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			secs, err := strconv.Atoi(strings.Trim(value, `"`))
			if err != nil {
				continue
			}
			secs = min(max(secs, 0), int(maxDiscoveryTTL/time.Second))
			ttl = time.Duration(secs) * time.Second
		}
	}
	return ttl
}
