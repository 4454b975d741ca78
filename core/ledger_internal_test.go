package core

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

var ledgerT0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// chain makes a grant's first record and the n records refreshed from it.
func chain(grant string, n int) []*record {
	recs := make([]*record, n+1)
	for i := range recs {
		recs[i] = &record{Token: Token{
			AccessToken:  fmt.Sprintf("at-%s-%06d-xxxxxxxxxxxxxxxxxxxxxxxx", grant, i),
			RefreshToken: fmt.Sprintf("rt-%s-%06d-xxxxxxxxxxxxxxxxxxxxxxxx", grant, i),
		}, Refreshes: i, Grant: grant}
	}
	return recs
}

// TestLedgerOneEntryPerGrant: however often a grant rotates, the ledger
// keeps one entry for it, and every older token of the grant is still
// known as redeemed.
func TestLedgerOneEntryPerGrant(t *testing.T) {
	l := newLedger(time.Hour)
	until := ledgerT0.Add(time.Hour)
	recs := chain("g", 1000)
	for i, cur := range recs[:len(recs)-1] {
		l.redeem(cur, fingerprintOf(cur.Token.RefreshToken), recs[i+1], ledgerT0, until)
	}
	if len(l.grants) != 1 || len(l.heads) != 1 || len(l.legacy) != 1 || len(l.all) != 1 {
		t.Fatalf("grants %d, heads %d, legacy %d, all %d; want 1, 1, 1 (the first refresh token), 1", len(l.grants), len(l.heads), len(l.legacy), len(l.all))
	}
	head := recs[len(recs)-1]
	for _, old := range recs[:len(recs)-1] {
		if got := l.newest(old, fingerprintOf(old.Token.RefreshToken), ledgerT0, time.Time{}); got != head {
			t.Fatalf("copy of refresh %d: newest %v, want the head", old.Refreshes, got)
		}
	}
	if got := l.newest(head, fingerprintOf(head.Token.RefreshToken), ledgerT0, time.Time{}); got != nil {
		t.Fatalf("the head itself is not redeemed, got %v", got)
	}
}

// TestLedgerLegacyRecords: a record saved before grants were named is
// found by its refresh token; its successor carries a grant.
func TestLedgerLegacyRecords(t *testing.T) {
	l := newLedger(time.Hour)
	recs := chain("g", 3)
	recs[0].Grant = "" // saved by an older version
	for i, cur := range recs[:3] {
		l.redeem(cur, fingerprintOf(cur.Token.RefreshToken), recs[i+1], ledgerT0, ledgerT0.Add(time.Hour))
	}
	if len(l.legacy) != 1 || len(l.all) != 1 {
		t.Fatalf("legacy %d, all %d; want 1, 1", len(l.legacy), len(l.all))
	}
	for _, old := range recs[:3] {
		if got := l.newest(old, fingerprintOf(old.Token.RefreshToken), ledgerT0, time.Time{}); got != recs[3] {
			t.Fatalf("copy of refresh %d not found stale", old.Refreshes)
		}
	}
}

// TestLedgerSweep: grants are forgotten after their bound, a few per
// redemption, and never before it; a stale copy met extends the bound.
func TestLedgerSweep(t *testing.T) {
	l := newLedger(time.Hour)
	const n = 1000
	var kept *record
	for i := range n {
		recs := chain(fmt.Sprint("old", i), 1)
		until := ledgerT0.Add(time.Hour)
		l.redeem(recs[0], fingerprintOf(recs[0].Token.RefreshToken), recs[1], ledgerT0, until)
		if i == 7 {
			kept = recs[0]
		}
	}
	// 50 minutes on, a stale copy of one grant is met by a request whose
	// session lives two more days.
	if l.newest(kept, fingerprintOf(kept.Token.RefreshToken), ledgerT0.Add(50*time.Minute), ledgerT0.Add(48*time.Hour)) == nil {
		t.Fatal("stale copy not found")
	}
	later := ledgerT0.Add(2 * time.Hour)
	for i := range n / sweepBatch * 2 {
		recs := chain(fmt.Sprint("new", i), 1)
		l.redeem(recs[0], fingerprintOf(recs[0].Token.RefreshToken), recs[1], later, later.Add(time.Hour))
	}
	if got := len(l.all); got != n/sweepBatch*2+1 {
		t.Errorf("%d grants kept, want the %d new ones and the extended one", got, n/sweepBatch*2)
	}
	if l.newest(kept, fingerprintOf(kept.Token.RefreshToken), later, time.Time{}) == nil {
		t.Error("the grant whose stale copy lives on was forgotten")
	}
	if len(l.grants) != len(l.all) || len(l.heads) != len(l.all) {
		t.Errorf("maps out of step: grants %d, heads %d, all %d", len(l.grants), len(l.heads), len(l.all))
	}
}

// BenchmarkLedger: 100,000 grants, each rotated rotations times, in one
// ledger, a tenth of them expiring on the way. It reports the heap the
// ledger holds per grant (its entries and the newest token of each grant,
// with 40-byte tokens), and how long each redemption held the ledger's
// lock, its incremental sweep included (wall time: on a shared machine
// the tail includes the process being descheduled).
//
// Custom metrics:
//
//	B/grant          heap held per grant, after GC
//	redeem-p50-ns    redeem, mutex held, sweep included
//	redeem-p999-ns
//	redeem-max-ns
func BenchmarkLedger(b *testing.B) {
	const grants = 100_000
	for _, rotations := range []int{1, 10} {
		b.Run(fmt.Sprintf("grants=100k/rotations=%d", rotations), func(b *testing.B) {
			var perGrant float64
			held := make([]time.Duration, 0, grants*rotations)
			for b.Loop() {
				held = held[:0]
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				chains := make([][]*record, grants)
				for i := range chains {
					chains[i] = chain(fmt.Sprint(i), rotations)
				}
				l := newLedger(time.Hour)
				for i, recs := range chains {
					until := ledgerT0.Add(time.Hour)
					if i%10 == 0 {
						until = ledgerT0.Add(time.Minute) // these expire
					}
					for j, cur := range recs[:rotations] {
						start := time.Now()
						l.redeem(cur, fingerprintOf(cur.Token.RefreshToken), recs[j+1], ledgerT0.Add(2*time.Minute), until)
						held = append(held, time.Since(start))
					}
				}
				chains = nil // all but the heads the ledger keeps are garbage
				runtime.GC()
				runtime.ReadMemStats(&after)
				perGrant = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / grants
				runtime.KeepAlive(l)
			}
			slices.Sort(held)
			b.ReportMetric(perGrant, "B/grant")
			b.ReportMetric(float64(held[len(held)/2]), "redeem-p50-ns")
			b.ReportMetric(float64(held[len(held)*999/1000]), "redeem-p999-ns")
			b.ReportMetric(float64(held[len(held)-1]), "redeem-max-ns")
		})
	}
}
