package core_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestClient401Edges: the cases of the 401 replay that TestClient401Replay
// does not cover.
func TestClient401Edges(t *testing.T) {
	t.Run("GetBody fails", func(t *testing.T) {
		f := newFixture(t, smarttest.Options{})
		session, _ := f.login()
		f.srv.ExpireAccessTokens()
		req, _ := http.NewRequest("POST", f.srv.FHIRBaseURL+"/Observation", strings.NewReader(`{"resourceType":"Observation"}`))
		req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
		resp, err := f.r.Client(f.request(session)).Do(req)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("got %v %v, want the 401", resp, err)
		}
		resp.Body.Close()
		if f.srv.FHIRCalls() != 1 {
			t.Errorf("FHIR calls = %d, want 1", f.srv.FHIRCalls())
		}
	})
	t.Run("refresh after 401 fails transiently", func(t *testing.T) {
		f := newFixture(t, smarttest.Options{})
		core.SetSleep(f.r, (&sleeps{}).sleep)
		session, _ := f.login()
		f.srv.ExpireAccessTokens()
		f.srv.SetTokenHook(status(502, ""))
		_, err := f.r.Client(f.request(session)).Get(f.srv.FHIRBaseURL + "/Patient/123")
		if !errors.Is(err, core.ErrOutcomeUnknown) || core.StatusCode(err) != 503 {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
		// The lost answer is resent once (Config.ResendAfter).
		if f.srv.FHIRCalls() != 1 || f.srv.RefreshCalls() != 2 {
			t.Errorf("FHIR calls = %d, refresh calls = %d, want 1 and 2", f.srv.FHIRCalls(), f.srv.RefreshCalls())
		}
	})
}
