package core

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestValueCacheNeverWrong: with many more values than slots, read and
// written by hundreds of goroutines at once, the cache answers a value's
// own record or nothing, never another value's.
func TestValueCacheNeverWrong(t *testing.T) {
	c := newValueCache()
	const n = 3 * valueCacheSize
	values := make([]string, n)
	recs := make([]*record, n)
	for i := range values {
		// Long values that share their ends except for the number, as
		// plain values of tokens obtained at the same time do.
		values[i] = plainPrefix + strings.Repeat("x", 200) + strconv.Itoa(i) + strings.Repeat("y", 200)
		recs[i] = &record{Token: Token{AccessToken: strconv.Itoa(i)}}
	}
	var wg sync.WaitGroup
	for g := range 300 {
		wg.Go(func() {
			for j := range 200 {
				i := (g*7919 + j*31) % n
				if j%3 == 0 {
					c.add(&valueEntry{value: values[i], rec: recs[i]})
				}
				// A copy, as a fresh session load holds.
				if e := c.get(strings.Clone(values[i])); e != nil && e.rec != recs[i] {
					t.Errorf("value %d answered the record of %s", i, e.rec.Token.AccessToken)
					return
				}
			}
		})
	}
	wg.Wait()
	hits := 0
	for i := range values {
		c.add(&valueEntry{value: values[i], rec: recs[i]})
		if e := c.get(values[i]); e != nil && e.rec == recs[i] {
			hits++
		}
	}
	if hits != n {
		t.Errorf("%d of %d values not found right after they were added", n-hits, n)
	}
}

// TestSessionValueForms: which stored forms each configuration reads,
// leaves alone (transient) or rejects (corrupt).
func TestSessionValueForms(t *testing.T) {
	k1, k2 := fuzzKeys[:1], fuzzKeys[1:]
	plain := valueRefresher(t, nil, nil)
	sealing := valueRefresher(t, k1, nil)
	decryptOnly := valueRefresher(t, nil, k1)
	other := valueRefresher(t, k2, nil)
	rec := fullRecord()
	plainText, _ := plain.sessionValue(rec)
	sealedText, _ := sealing.sessionValue(rec)
	sealedBytes, _ := sealing.sealer.seal(rec)
	const ok, transient, corrupt = "ok", "transient", "corrupt"
	tests := []struct {
		name  string
		value any
		want  map[*Refresher]string
	}{
		{"plain text", plainText, map[*Refresher]string{plain: ok, decryptOnly: ok, sealing: corrupt, other: corrupt}},
		{"sealed text", sealedText, map[*Refresher]string{plain: transient, decryptOnly: ok, sealing: ok, other: transient}},
		{"v1 *record", rec, map[*Refresher]string{plain: ok, decryptOnly: ok, sealing: corrupt, other: corrupt}},
		{"v1 sealed []byte", sealedBytes, map[*Refresher]string{plain: transient, decryptOnly: ok, sealing: ok, other: transient}},
		{"newer format", "smartrefresh.record.v3:{}", map[*Refresher]string{plain: transient, decryptOnly: transient, sealing: transient, other: transient}},
		{"plain text without a token", plainPrefix + `{"refresh_token":"r"}`, map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
		{"sealed text, not base64", sealedPrefix + "*", map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
		{"newer sealed format", "smartrefresh.sealed.v2:AAAA", map[*Refresher]string{plain: transient, decryptOnly: transient, sealing: transient, other: transient}},
		{"our prefix, not a form", "smartrefresh.token", map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
		{"our prefix, no version", "smartrefresh.record:{}", map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
		{"another string", "eyJhbGciOi", map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
		{"v1 *record without a token", &record{}, map[*Refresher]string{plain: corrupt, decryptOnly: corrupt, sealing: corrupt, other: corrupt}},
	}
	names := map[*Refresher]string{plain: "plain", sealing: "sealing", decryptOnly: "decrypt-only", other: "other key"}
	for _, tt := range tests {
		for r, want := range tt.want {
			got, err := r.decodeSessionRecord(tt.value)
			outcome := ok
			switch {
			case err == nil && !sameRecord(got, rec):
				outcome = "a different record"
			case err != nil && errors.Is(err, ErrTransient):
				outcome = transient
			case err != nil:
				outcome = corrupt
			}
			if outcome != want {
				t.Errorf("%s read by %s: %s (%v), want %s", tt.name, names[r], outcome, err, want)
			}
		}
	}
}
