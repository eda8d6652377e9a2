package main

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
)

// BenchmarkKeptDecisionHeap reports the Go heap one fresh token leaves
// behind after its first allowed decision: its verified-token cache entry
// (heap-B/verified-token, measured with reuse off) and the kept decision
// on top of it (heap-B/kept-decision, reuse on minus reuse off). It
// measures memory, not time; run it with -benchtime=1x.
func BenchmarkKeptDecisionHeap(b *testing.B) {
	const n = 5000
	var on, off heapUse
	for b.Loop() {
		on = heapPerFreshToken(b, nil, n)
		off = heapPerFreshToken(b, func(c *config.Config) { c.DecisionCache.MaxEntries = 0 }, n)
	}
	b.ReportMetric(on.heap-off.heap, "heap-B/kept-decision")
	b.ReportMetric(on.keptEstimate, "estimate-B/kept-decision")
	b.ReportMetric(off.heap, "heap-B/verified-token")
	b.ReportMetric(off.tokenEstimate, "estimate-B/verified-token")
}

// heapUse is the live heap per token and the caches' own estimates of it.
type heapUse struct {
	heap, tokenEstimate, keptEstimate float64
}

// heapPerFreshToken decides one request for each of n fresh tokens and
// returns the live heap they added, per token.
func heapPerFreshToken(b *testing.B, mutate func(*config.Config), n int) heapUse {
	b.Helper()
	tb := newTestbed(b, mutate)
	reqs := make([]*decision.Request, n)
	for i := range reqs {
		r, err := decision.NewRequest(decision.RawRequest{
			Method:   "GET",
			URL:      "https://api.example.com/v1/accounts/42",
			Headers:  map[string][]string{"authorization": {"Bearer " + tb.mint(b, "ES256", map[string]any{"sub": fmt.Sprintf("user-%d", i)})}, "user-agent": {"bench/1"}},
			RemoteIP: "203.0.113.7",
		})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = r
	}
	ctx := b.Context()
	before := liveHeap()
	for _, r := range reqs {
		d, err := tb.app.decider.Decide(ctx, r)
		if err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
	}
	after := liveHeap()
	runtime.KeepAlive(reqs)
	runtime.KeepAlive(tb)
	return heapUse{
		heap:          float64(after-before) / float64(n),
		tokenEstimate: float64(tb.app.verifier.CacheStats().Bytes) / float64(n),
		keptEstimate:  float64(tb.app.decider.ReuseStats().Bytes) / float64(n),
	}
}

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
