package dpop_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/store"
)

func TestVerifyReplay(t *testing.T) {
	ctx := context.Background()
	p := prover(t, "ES256")
	other := prover(t, "EdDSA")

	t.Run("fail/D8 the same proof twice", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		proof := mustProof(t, p, "GET", testURL, testToken)
		first, err := v.Verify(ctx, request(t, proof))
		if err != nil {
			t.Fatal(err)
		}
		if first.JTIHash != dpop.ReplayKey(p.JKT(), jtiOf(t, proof)) {
			t.Errorf("JTIHash %s is not the replay key", first.JTIHash)
		}
		if len(first.JTIHash) > store.MaxKeyLen {
			t.Errorf("replay key of %d bytes", len(first.JTIHash))
		}
		_, err = v.Verify(ctx, request(t, proof))
		wantCode(t, err, dpop.CodeReplayed, "already been used")
	})

	t.Run("fail/D8 another proof with a spent jti", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		jti := dpoptest.WithClaim("jti", "fixed-jti")
		if _, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, jti))); err != nil {
			t.Fatal(err)
		}
		_, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, jti)))
		wantCode(t, err, dpop.CodeReplayed, "")
	})

	t.Run("ok/D8 the same jti under another key", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		jti := dpoptest.WithClaim("jti", "shared-jti")
		if _, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, jti))); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, request(t, mustProof(t, other, "GET", testURL, testToken, jti))); err != nil {
			t.Fatalf("one client's jti blocked another's: %v", err)
		}
	})

	t.Run("ok/D8 a jti of 256 bytes is stored as a bounded key", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		long := make([]byte, dpop.MaxJTILength)
		for i := range long {
			long[i] = 'j'
		}
		if _, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, dpoptest.WithClaim("jti", string(long))))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("fail/D8 a proof replayed at another request", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		proof := mustProof(t, p, "GET", testURL, testToken)
		if _, err := v.Verify(ctx, request(t, proof)); err != nil {
			t.Fatal(err)
		}
		// The proof is bound to GET testURL: any other request refuses it
		// for that reason before the replay cache is asked.
		r := request(t, proof)
		r.Method = "DELETE"
		_, err := v.Verify(ctx, r)
		wantCode(t, err, dpop.CodeProofInvalid, "htm")
	})
}

func TestVerifyConcurrentSpends(t *testing.T) {
	ctx := context.Background()
	p := prover(t, "ES256")
	v := newVerifier(t, openBolt(t), dpop.Options{})
	proof := mustProof(t, p, "GET", testURL, testToken)

	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		fresh    int
		replayed int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := v.Verify(ctx, request(t, proof))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				fresh++
			default:
				if de, ok := err.(*dpop.Error); ok && de.Code == dpop.CodeReplayed {
					replayed++
				} else {
					t.Errorf("unexpected error: %v", err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if fresh != 1 || replayed != n-1 {
		t.Fatalf("%d fresh and %d replayed, want 1 and %d", fresh, replayed, n-1)
	}
}

func TestCheckSpendsNothing(t *testing.T) {
	ctx := context.Background()
	p := prover(t, "ES256")

	t.Run("ok/a fresh proof checks valid and stays unspent", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		proof := mustProof(t, p, "GET", testURL, testToken)
		for range 2 {
			if _, err := v.Check(ctx, request(t, proof)); err != nil {
				t.Fatalf("Check: %v", err)
			}
		}
		if _, err := v.Verify(ctx, request(t, proof)); err != nil {
			t.Fatalf("Verify after Check: %v: Check spent the jti", err)
		}
	})

	t.Run("fail/a spent proof checks as replayed", func(t *testing.T) {
		v := newVerifier(t, openBolt(t), dpop.Options{})
		proof := mustProof(t, p, "GET", testURL, testToken)
		if _, err := v.Verify(ctx, request(t, proof)); err != nil {
			t.Fatal(err)
		}
		_, err := v.Check(ctx, request(t, proof))
		wantCode(t, err, dpop.CodeReplayed, "already been used")
	})

	t.Run("fail/a replay cache that cannot be read without writing", func(t *testing.T) {
		v := newVerifier(t, newMemReplay(), dpop.Options{})
		_, err := v.Check(ctx, request(t, mustProof(t, p, "GET", testURL, testToken)))
		if !errors.Is(err, dpop.ErrCheckUnsupported) {
			t.Fatalf("err = %v, want ErrCheckUnsupported", err)
		}
	})
}
