package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// deployment is replicas of one app behind a load balancer: each has its
// own scs manager and Refresher, all share one session store and the mock
// server, as the processes of a rolling deploy do.
type deployment struct {
	t     *testing.T
	clock *smarttest.Clock
	srv   *smarttest.Server
	store scs.Store
}

func newDeployment(t *testing.T) *deployment {
	d := &deployment{t: t, clock: newClock(), store: memstore.New()}
	d.srv = smarttest.NewServer(smarttest.Options{Now: d.clock.Now, AccessTokenTTL: time.Hour})
	t.Cleanup(d.srv.Close)
	return d
}

// replica is one process of a deployment.
type replica struct {
	d  *deployment
	sm *scs.SessionManager
	r  *core.Refresher
}

// replica starts a process configured by edit.
func (d *deployment) replica(edit func(*core.Config)) *replica {
	d.t.Helper()
	sm := scs.New()
	sm.Store = d.store
	sm.IdleTimeout = 30 * time.Minute
	o := d.srv.Options()
	cfg := core.Config{TokenURL: d.srv.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		AuthMethod: o.AuthMethod, Sessions: sm, Now: d.clock.Now}
	edit(&cfg)
	r, err := core.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	return &replica{d: d, sm: sm, r: r}
}

func keys(k ...[]byte) [][]byte { return k }

// login saves a fresh grant on p and returns the session token.
func (p *replica) login() string {
	p.d.t.Helper()
	ctx, err := p.sm.Load(context.Background(), "")
	if err != nil {
		p.d.t.Fatal(err)
	}
	if err := p.r.Save(ctx, p.d.srv.Grant()); err != nil {
		p.d.t.Fatal(err)
	}
	return p.sm.Token(ctx)
}

// token serves one request of session on p, as LoadAndSave would.
func (p *replica) token(session string) (*core.Token, error) {
	p.d.t.Helper()
	ctx, err := p.sm.Load(context.Background(), session)
	if err != nil {
		p.d.t.Fatal(err)
	}
	tok, terr := p.r.Token(ctx)
	if p.sm.Status(ctx) == scs.Modified {
		if _, _, err := p.sm.Commit(ctx); err != nil {
			p.d.t.Fatal(err)
		}
	}
	return tok, terr
}

// outcome counts what the requests of a scenario met.
type outcome struct{ ok, transient, reauth, other int }

func (o *outcome) add(err error) {
	switch {
	case err == nil:
		o.ok++
	case errors.Is(err, core.ErrTransient):
		o.transient++
	case errors.Is(err, core.ErrReauthRequired):
		o.reauth++
	default:
		o.other++
	}
}

// lost counts the sessions whose token is gone: p answers them with
// re-authorization.
func (d *deployment) lost(p *replica, sessions []string) int {
	n := 0
	for _, s := range sessions {
		if _, err := p.token(s); errors.Is(err, core.ErrReauthRequired) {
			n++
		}
	}
	return n
}

func (d *deployment) checkNoReuse() {
	d.t.Helper()
	if n := d.srv.Reuses(); n != 0 {
		d.t.Errorf("the server saw %d reused refresh tokens", n)
	}
	if n := d.srv.RevokedGrants(); n != 0 {
		d.t.Errorf("the server revoked %d grants", n)
	}
}

// TestKeyRotationOnePhase: a release that encrypts with a new key k2 rolls
// out while replicas configured with only k1 still serve (and again on
// rollback to them). A value sealed with a key an old replica does not know
// is left alone and answered as transient (503): no session is lost, and
// the next request on a new replica works.
func TestKeyRotationOnePhase(t *testing.T) {
	k1, k2 := newKey(), newKey()
	for _, tt := range []string{"upgrade", "rollback"} {
		t.Run(tt, func(t *testing.T) {
			d := newDeployment(t)
			old := d.replica(func(c *core.Config) { c.EncryptionKeys = keys(k1) })
			next := d.replica(func(c *core.Config) { c.EncryptionKeys = keys(k2, k1) })
			var sessions []string
			for range 20 {
				if tt == "upgrade" {
					// Logged in on the new release.
					sessions = append(sessions, next.login())
					continue
				}
				// Logged in on the old release, refreshed on the new one,
				// which sealed the new token with k2; then the deploy is
				// rolled back.
				sessions = append(sessions, old.login())
			}
			if tt == "rollback" {
				d.clock.Advance(time.Hour)
				for _, s := range sessions {
					if _, err := next.token(s); err != nil {
						t.Fatal(err)
					}
				}
			}
			var first outcome
			for _, s := range sessions {
				_, err := old.token(s)
				first.add(err)
			}
			t.Logf("first request on an old replica: %+v", first)
			if first.reauth != 0 || first.other != 0 || first.transient != len(sessions) {
				t.Errorf("first request on an old replica: %+v, want %d transient", first, len(sessions))
			}
			if n := d.lost(next, sessions); n != 0 {
				t.Errorf("%d of %d sessions lost", n, len(sessions))
			}
			d.checkNoReuse()
		})
	}
}

// TestKeyRotationTwoPhase rotates the encryption key from k1 to k2 the
// documented way, with replicas sharing one store and one Coordinator:
// phase 1 deploys k2 as a decryption key everywhere, phase 2 makes it the
// encrypting key, then phase 2 is rolled back and deployed again. At each
// step the replicas of both releases serve together. Sessions log in on
// every replica, refresh on one, have a stale copy written back by
// another and are read by all: no request fails, no session is lost, no
// refresh token is sent twice.
func TestKeyRotationTwoPhase(t *testing.T) {
	k1, k2 := newKey(), newKey()
	d := newDeployment(t)
	coord := newMemCoordinator()
	release := func(enc, dec [][]byte) *replica {
		return d.replica(func(c *core.Config) {
			c.EncryptionKeys, c.DecryptionKeys, c.Coordinator = enc, dec, coord
		})
	}
	v0 := release(keys(k1), nil)      // before the rotation
	v1 := release(keys(k1), keys(k2)) // phase 1: k2 only decrypts
	v2 := release(keys(k2, k1), nil)  // phase 2: k2 encrypts
	steps := []struct {
		name    string
		serving []*replica
	}{
		{"phase 1 rolling out", []*replica{v0, v1}},
		{"phase 2 rolling out", []*replica{v1, v2}},
		{"phase 2 rolled back", []*replica{v1}},
		{"phase 2 rolling out again", []*replica{v2, v1}},
		{"phase 2 done", []*replica{v2}},
	}
	var sessions []string
	var all outcome
	refreshes := 0
	for _, step := range steps {
		n := len(step.serving)
		for i := range 10 {
			sessions = append(sessions, step.serving[i%n].login())
		}
		stale := map[string]context.Context{}
		for i, s := range sessions {
			for _, p := range step.serving {
				_, err := p.token(s)
				all.add(err)
			}
			// A request on a loads the session before the token expires
			// and commits it after b refreshed it: a stale copy.
			a := step.serving[i%n]
			ctx, err := a.sm.Load(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.r.Token(ctx)
			all.add(err)
			stale[s] = ctx
		}
		d.clock.Advance(time.Hour)
		for i, s := range sessions {
			b := step.serving[(i+1)%n]
			_, err := b.token(s)
			all.add(err)
			a := step.serving[i%n]
			if _, _, err := a.sm.Commit(stale[s]); err != nil {
				t.Fatal(err)
			}
			for _, p := range step.serving {
				_, err := p.token(s)
				all.add(err)
			}
		}
		refreshes += len(sessions)
		t.Logf("%s: %d sessions, requests %+v", step.name, len(sessions), all)
	}
	// One refresh per session and step: no stale copy made another.
	if n := d.srv.RefreshCalls(); n != refreshes {
		t.Errorf("%d refresh calls, want %d", n, refreshes)
	}
	if all.transient+all.reauth+all.other != 0 {
		t.Errorf("requests: %+v, want all served", all)
	}
	if n := d.lost(v2, sessions); n != 0 {
		t.Errorf("%d of %d sessions lost", n, len(sessions))
	}
	d.checkNoReuse()
}
