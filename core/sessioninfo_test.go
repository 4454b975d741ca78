package core_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/smartrefresh/smartrefresh/core"
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
