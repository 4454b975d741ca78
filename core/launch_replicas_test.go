package core_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/smartrefresh/smartrefresh/core"
)

// heldFindStore is a session store whose first Find once armed reads the
// stored session at once but answers only when released: the request that
// made it goes on with the session as it was then, as a request does that
// loaded its session a moment before another request's commit.
type heldFindStore struct {
	scs.Store
	armed    atomic.Bool
	loaded   chan struct{}
	released chan struct{}
}

func newHeldFindStore(s scs.Store) *heldFindStore {
	return &heldFindStore{Store: s, loaded: make(chan struct{}), released: make(chan struct{})}
}

func (s *heldFindStore) Find(token string) ([]byte, bool, error) {
	b, ok, err := s.Store.Find(token)
	if s.armed.CompareAndSwap(true, false) {
		close(s.loaded)
		<-s.released
	}
	return b, ok, err
}

// doubleCallback runs a launch in b and loads its callback twice: first on
// late, whose load of the session is held, then on a, in full; then late
// goes on. It returns late's answer.
func doubleCallback(t *testing.T, a *launchApp, b *browser, held *heldFindStore, lateURL string) answer {
	t.Helper()
	cb := a.authorize(b, a.launch(b, ""))
	held.armed.Store(true)
	onLate := make(chan answer, 1)
	go func() { onLate <- b.get(lateURL + cb[strings.Index(cb, "/callback"):]) }()
	<-held.loaded
	if res := b.get(cb); res.status != http.StatusSeeOther {
		t.Fatalf("first callback: %d %s, want 303", res.status, res.body)
	}
	close(held.released)
	return <-onLate
}

// TestCallbackTwiceOnTwoReplicas: a double-clicked callback whose two loads
// reach two replicas sharing the session store and a Coordinator. Replica
// B loads the session (the launch still pending in it) just before replica
// A finishes the login. B must not send the authorization code again: a
// strict server would revoke the grant A just saved.
func TestCallbackTwiceOnTwoReplicas(t *testing.T) {
	held := newHeldFindStore(memstore.New())
	coord := newMemCoordinator()
	a := newLaunchApp(t, launchOptions{refresher: func(c *core.Config) {
		c.Sessions.Store = held
		c.Coordinator = coord
	}})

	smB := scs.New()
	smB.IdleTimeout = a.sm.IdleTimeout
	smB.Store = held
	so := a.srv.Options()
	rB, err := core.New(core.Config{TokenURL: a.srv.TokenURL, ClientID: so.ClientID, ClientSecret: so.ClientSecret,
		AuthMethod: so.AuthMethod, Sessions: smB, Now: a.clock.Now, Coordinator: coord})
	if err != nil {
		t.Fatal(err)
	}
	lB, err := core.NewLauncher(rB, core.LaunchConfig{RedirectURL: a.url + "/callback",
		Scope: "launch/patient patient/*.read openid fhirUser offline_access", FHIRBaseURL: a.srv.FHIRBaseURL})
	if err != nil {
		t.Fatal(err)
	}
	appB := httptest.NewServer(smB.LoadAndSave(lB.CallbackHandler()))
	defer appB.Close()

	resB := doubleCallback(t, a, newBrowser(t), held, appB.URL)
	if a.srv.TokenCalls() != 1 || a.srv.RevokedGrants() != 0 || resB.status != http.StatusBadRequest || !strings.Contains(resB.body, "state_used") {
		t.Errorf("callback on two replicas: %d token calls, %d revoked grants, replica B answered %d %s; want 1, 0 and 400 state_used",
			a.srv.TokenCalls(), a.srv.RevokedGrants(), resB.status, resB.body)
	}
}

// TestCallbackTwiceKeepsTheLogin: the second load of a callback, whose
// session copy predates the login the first load completed (and whose
// session token the login renewed), is refused without writing that copy
// back: its cookie would replace the new session's, and the user, just
// logged in, would be logged out. (With IdleTimeout set, scs itself
// commits every request's copy; see the README's "Launch".)
func TestCallbackTwiceKeepsTheLogin(t *testing.T) {
	held := newHeldFindStore(memstore.New())
	a := newLaunchApp(t, launchOptions{refresher: func(c *core.Config) {
		c.Sessions.Store = held
		c.Sessions.IdleTimeout = 0
	}})
	b := newBrowser(t)
	late := doubleCallback(t, a, b, held, a.url)
	if late.status != http.StatusBadRequest || a.srv.TokenCalls() != 1 {
		t.Errorf("second load: %d %s, %d token calls; want 400 and 1", late.status, late.body, a.srv.TokenCalls())
	}
	a.me(b) // still logged in
}
