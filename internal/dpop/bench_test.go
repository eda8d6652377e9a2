package dpop_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

// BenchmarkVerify measures Verify of valid proofs.
//
//   - crypto: one proof verified again and again against a replay cache that
//     always says "fresh": parsing, key checks and the signature only.
//   - memory: a new proof each time, spent in an in-memory cache.
//   - bbolt: a new proof each time, spent in the bbolt store (parallel,
//     since the store coalesces concurrent spends into one fsync).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		b.Run(alg+"/crypto", func(b *testing.B) {
			p := prover(b, alg)
			v := newVerifier(b, freshReplay{}, dpop.Options{})
			r := request(b, mustProof(b, p, "GET", testURL, testToken))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	b.Run("ES256/memory", func(b *testing.B) {
		now, reqs := mintRequests(b, b.N)
		v := newVerifier(b, newMemReplay(), dpop.Options{Now: func() time.Time { return now }})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := v.Verify(ctx, reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("ES256/bbolt", func(b *testing.B) {
		now, reqs := mintRequests(b, b.N)
		v := newVerifier(b, openBolt(b), dpop.Options{Now: func() time.Time { return now }})
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1) - 1
				if _, err := v.Verify(ctx, reqs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	refused := map[string]func(b *testing.B) string{
		// The signature is checked by ECDSA and fails: full crypto cost.
		"ES256/refused signed by another key": func(b *testing.B) string {
			other, err := dpoptest.NewProver("ES256")
			if err != nil {
				b.Fatal(err)
			}
			return mustProof(b, prover(b, "ES256"), "GET", testURL, testToken, dpoptest.WithSigner(other))
		},
		// The R||S size check refuses before any cryptography.
		"ES256/refused signature of the wrong size": func(b *testing.B) string {
			return mustProof(b, prover(b, "ES256"), "GET", testURL, testToken, dpoptest.WithSigner(prover(b, "ES384")))
		},
		"garbage": func(*testing.B) string { return "garbage.garbage.garbage" },
	}
	for name, mint := range refused {
		b.Run(name, func(b *testing.B) {
			v := newVerifier(b, freshReplay{}, dpop.Options{})
			r := request(b, mint(b))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, r); err == nil {
					b.Fatal("verified")
				}
			}
		})
	}
}

// mintRequests mints n distinct ES256 proofs, issued now.
func mintRequests(b *testing.B, n int) (time.Time, []dpop.Request) {
	b.Helper()
	p := prover(b, "ES256")
	now := time.Now()
	reqs := make([]dpop.Request, n)
	for i := range reqs {
		reqs[i] = request(b, mustProof(b, p, "GET", testURL, testToken, dpoptest.WithIssuedAt(now)))
	}
	return now, reqs
}
