package core_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/smarttest"
)

// TestSessionInfoJSON: an app that serves SessionInfo as JSON gets the
// snake_case names of the demo's /api/token, and a zero Expiry (the server
// did not say) is left out.
func TestSessionInfoJSON(t *testing.T) {
	info := core.SessionInfo{Expiry: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Scope: "patient/*.rs",
		Patient: "123", Encounter: "456", HasRefreshToken: true, Refreshes: 2,
		FHIRBaseURL: "https://ehr.example/fhir", FHIRUser: "https://ehr.example/fhir/Practitioner/1"}
	js, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"encounter", "expires_at", "fhir_base_url", "fhir_user", "has_refresh_token", "launch", "patient", "refreshes", "scope"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if got["expires_at"] != "2026-01-02T03:04:05Z" {
		t.Errorf("expires_at = %v", got["expires_at"])
	}
	js, _ = json.Marshal(core.SessionInfo{})
	got = nil
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["expires_at"]; ok {
		t.Errorf("a zero Expiry is encoded: %s", js)
	}
}

// TestSessionInfoRefreshAt: Info says when the token was obtained and when
// it becomes due for a refresh (Leeway before expiry, or a quarter of a
// short lifetime), and Token refreshes at that moment, not before.
func TestSessionInfoRefreshAt(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ttl    time.Duration
		margin time.Duration
	}{
		{"an hour: Leeway", time.Hour, core.DefaultLeeway},
		{"30 s: a quarter of the lifetime", 30 * time.Second, 7500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, smarttest.Options{AccessTokenTTL: tt.ttl})
			session, _ := f.login()
			start := f.clock.Now()
			info, err := f.r.Info(f.request(session))
			if err != nil {
				t.Fatal(err)
			}
			if !info.Obtained.Equal(start) || !info.RefreshAt.Equal(info.Expiry.Add(-tt.margin)) {
				t.Fatalf("obtained %v refresh at %v expiry %v; want obtained %v, refresh at expiry - %v",
					info.Obtained, info.RefreshAt, info.Expiry, start, tt.margin)
			}
			f.clock.Advance(info.RefreshAt.Sub(f.clock.Now()) - time.Millisecond)
			if _, err := f.token(session); err != nil || f.srv.RefreshCalls() != 0 {
				t.Fatalf("just before RefreshAt: %v, %d refreshes, want none", err, f.srv.RefreshCalls())
			}
			f.clock.Advance(time.Millisecond)
			if _, err := f.token(session); err != nil || f.srv.RefreshCalls() != 1 {
				t.Fatalf("at RefreshAt: %v, %d refreshes, want one", err, f.srv.RefreshCalls())
			}
			after, err := f.r.Info(f.request(session))
			if err != nil {
				t.Fatal(err)
			}
			if !after.Obtained.Equal(f.clock.Now()) || !after.RefreshAt.After(info.Expiry) || after.Refreshes != 1 {
				t.Errorf("after the refresh: obtained %v, refresh at %v (old expiry %v), %d refreshes",
					after.Obtained, after.RefreshAt, info.Expiry, after.Refreshes)
			}
			f.checkNoReuse()
		})
	}
}
