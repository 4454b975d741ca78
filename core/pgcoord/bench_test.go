package pgcoord_test

import (
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/pgcoord"
)

// BenchmarkRefresh: the latency a PostgreSQL Coordinator adds to a
// refresh (compare the two sub-benchmarks).
func BenchmarkRefresh(b *testing.B) {
	b.Run("NoCoordinator", func(b *testing.B) { coordtest.BenchmarkRefresh(b, nil) })
	b.Run("Postgres", func(b *testing.B) {
		coordtest.BenchmarkRefresh(b, func(b *testing.B) core.Coordinator {
			pool := pgcoord.NewTestPool(b)
			return pgcoord.New(pool, pgcoord.WithPrefix(pgcoord.KeyPrefix(b, pool)))
		})
	})
}
