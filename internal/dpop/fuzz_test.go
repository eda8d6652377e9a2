package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

// fuzzProvers returns provers with fixed keys: every fuzz worker process
// runs the target's setup again and must mint the same signing inputs as
// the coordinator.
func fuzzProvers(f *testing.F) []*dpoptest.Prover {
	f.Helper()
	scalar := func(label string, size int) []byte {
		var out []byte
		for i := byte(0); len(out) < size; i++ {
			sum := sha256.Sum256([]byte{i, ' ', label[0], label[len(label)-1]})
			out = append(out, sum[:]...)
		}
		out = out[:size]
		out[0] &= 0x7f // below the group order
		return out
	}
	var out []*dpoptest.Prover
	for _, c := range []struct {
		alg   string
		curve elliptic.Curve
		size  int
	}{{"ES256", elliptic.P256(), 32}, {"ES384", elliptic.P384(), 48}, {"ES512", elliptic.P521(), 66}} {
		d := scalar(c.alg, c.size)
		if c.size == 66 {
			d[0] &= 0x01
		}
		k, err := ecdsa.ParseRawPrivateKey(c.curve, d)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, fuzzProver(f, c.alg, k))
	}
	out = append(out, fuzzProver(f, "EdDSA", ed25519.NewKeyFromSeed(scalar("EdDSA", 32))))

	pemBytes, err := os.ReadFile(filepath.Join("testdata", "rsa2048.pem"))
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		f.Fatal("testdata/rsa2048.pem holds no PEM block")
	}
	rsaKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	for _, alg := range []string{"RS256", "PS256"} {
		out = append(out, fuzzProver(f, alg, rsaKey.(crypto.Signer)))
	}
	return out
}

func fuzzProver(f *testing.F, alg string, key crypto.Signer) *dpoptest.Prover {
	f.Helper()
	p, err := dpoptest.NewProverWithKey(alg, key)
	if err != nil {
		f.Fatal(err)
	}
	return p
}

// FuzzVerify feeds arbitrary DPoP header values to Verify. It must never
// panic, must refuse with a *dpop.Error that does not repeat the input, and
// must accept nothing but the correctly signed seed proofs: a mutation that
// verifies would mean a forged or malleable proof. Keys, claims and the
// clock are fixed so that every fuzz worker knows the same seeds.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	iat := dpoptest.WithIssuedAt(now)
	v, err := dpop.NewVerifier(freshReplay{}, dpop.Options{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	url := mustURL(f, testURL)
	var signed []string // signing inputs of the valid seeds
	add := func(proof string) {
		r := dpop.Request{Proofs: []string{proof}, Method: "GET", URL: url, AccessToken: testToken}
		if _, err := v.Verify(context.Background(), r); err != nil {
			f.Fatalf("valid seed refused: %v", err)
		}
		f.Add(proof)
		if h, rest, ok := strings.Cut(proof, "."); ok {
			if p, _, ok := strings.Cut(rest, "."); ok {
				signed = append(signed, h+"."+p)
			}
		}
	}
	provers := fuzzProvers(f)
	for _, p := range provers {
		add(mustProof(f, p, "GET", testURL, testToken, iat, dpoptest.WithClaim("jti", "fuzz-1")))
		add(mustProof(f, p, "GET", "HTTPS://RESOURCE.example.org:443/a/../x?q#f", testToken, iat,
			dpoptest.WithClaim("jti", "fuzz-2"),
			dpoptest.WithHeader("kid", "k"), dpoptest.WithClaim("ext", []any{map[string]any{"a": nil}})))
	}
	es := provers[0]
	for i, opt := range []dpoptest.ProofOption{
		dpoptest.WithHeader("typ", "JWT"),
		dpoptest.WithHeader("alg", "none"),
		dpoptest.WithHeader("jwk", map[string]any{"kty": "oct", "k": "AAAA"}),
		dpoptest.WithHeader("crit", []string{"b64"}),
		dpoptest.WithClaim("iat", "1"),
		dpoptest.WithClaim("jti", nil),
		dpoptest.WithClaim("htu", "//resource.example.org/x"),
	} {
		f.Add(mustProof(f, es, "GET", testURL, testToken, iat, dpoptest.WithClaim("jti", "bad-"+strconv.Itoa(i)), opt))
	}
	for _, s := range []string{"", ".", "..", "a.b.c", "a.b.c.d.e", "eyJ9.e30.", "e30.e30.AAAA", `{"payload":""}`} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, proof string) {
		r := dpop.Request{Proofs: []string{proof}, Method: "GET", URL: url, AccessToken: testToken}
		got, err := v.Verify(context.Background(), r)
		if err == nil {
			h, rest, _ := strings.Cut(proof, ".")
			p, _, _ := strings.Cut(rest, ".")
			for _, s := range signed {
				if h+"."+p == s {
					if got == nil || got.JKT == "" {
						t.Fatal("nil or incomplete proof without error")
					}
					return
				}
			}
			t.Fatalf("a proof that was never signed verified: %q", proof)
		}
		var de *dpop.Error
		if !errors.As(err, &de) {
			t.Fatalf("error %v is not a *dpop.Error", err)
		}
		if de.Message == "" || (de.Code != dpop.CodeProofInvalid && de.Code != dpop.CodeReplayed) {
			t.Fatalf("bad error %+v", de)
		}
		if len(proof) >= 16 && strings.Contains(de.Error(), proof) {
			t.Fatalf("error repeats the proof")
		}
	})
}
