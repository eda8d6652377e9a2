package token

import (
	"context"
	"testing"
)

// BenchmarkVerifyES256Miss measures a full verification: shape checks,
// strict JSON parsing, key lookup, ECDSA P-256, claim checks.
func BenchmarkVerifyES256Miss(b *testing.B) {
	f := newFixture(b)
	raw := mint(b, f.a, nil)
	ctx := context.Background()
	tok, err := f.v.Verify(ctx, raw) // loads the JWKS
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.v.Forget(tok.Hash)
		if _, err := f.v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCacheHit measures a repeated token.
func BenchmarkVerifyCacheHit(b *testing.B) {
	f := newFixture(b)
	raw := mint(b, f.a, nil)
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.v.Verify(ctx, raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyRS256Miss and BenchmarkVerifyEdDSAMiss give the other key
// types for comparison.
func BenchmarkVerifyRS256Miss(b *testing.B) {
	benchMiss(b, func(f *fixture) string { return mint(b, f.rsa, nil) })
}

func BenchmarkVerifyEdDSAMiss(b *testing.B) {
	benchMiss(b, func(f *fixture) string { return mint(b, f.ed, nil) })
}

func benchMiss(b *testing.B, token func(*fixture) string) {
	f := newFixture(b)
	raw := token(f)
	ctx := context.Background()
	tok, err := f.v.Verify(ctx, raw)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.v.Forget(tok.Hash)
		if _, err := f.v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
