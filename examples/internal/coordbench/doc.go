// Package coordbench holds BenchmarkGrantsDue, which compares the
// Coordinators on PostgreSQL, go-redis and redigo side by side. It lives in
// the examples module, which requires every Coordinator's module, so that
// the root module's tests import none of them.
package coordbench
