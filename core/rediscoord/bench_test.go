package rediscoord_test

import (
	"testing"

	"github.com/smartrefresh/smartrefresh/core"
	"github.com/smartrefresh/smartrefresh/core/coordtest"
	"github.com/smartrefresh/smartrefresh/core/rediscoord"
)

// BenchmarkRefresh: the latency a Redis Coordinator adds to a refresh
// (compare the sub-benchmarks).
func BenchmarkRefresh(b *testing.B) {
	b.Run("NoCoordinator", func(b *testing.B) { coordtest.BenchmarkRefresh(b, nil) })
	b.Run("Redigo", func(b *testing.B) {
		coordtest.BenchmarkRefresh(b, func(b *testing.B) core.Coordinator {
			pool := rediscoord.NewTestPool(b)
			return rediscoord.New(pool, rediscoord.WithPrefix(rediscoord.KeyPrefix(b, pool)))
		})
	})
}
