//go:build integration

package main

import (
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/redistest"
)

// BenchmarkDecideWarmBearerBackends measures the warm-bearer decision (a
// bearer token already in the verification cache, shipped policy) with each
// store backend, in one run: bbolt, and redis against a real local
// redis-server. With redis the fingerprint guardrail reads pdp.last_seen
// from Redis (one round trip per decision) and the sighting is recorded
// there asynchronously; revocation look-ups stay local in both.
//
//	go test -tags integration -run '^$' -bench WarmBearerBackends ./cmd/pdp
func BenchmarkDecideWarmBearerBackends(b *testing.B) {
	srv := redistest.Start(b)
	for _, backend := range []string{config.BackendBbolt, config.BackendRedis} {
		tb := newTestbed(b, func(c *config.Config) {
			c.Store.Backend = backend
			c.Store.Redis.Addrs = []string{srv.Addr()}
			c.Store.Redis.Timeout = 500 * time.Millisecond // a slow CI machine must not fail the run
		})
		req := warmRequest(b, tb)
		b.Run("backend="+backend, func(b *testing.B) { decideAllowed(b, tb, req) })
		b.Run("backend="+backend+"/parallel", func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, err := tb.app.decider.Decide(ctx, req)
					if err != nil || !d.Allow {
						b.Errorf("decision: %v %+v", err, d)
						return
					}
				}
			})
		})
	}
}
