package dpop_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/uri"
)

const (
	testURL   = "https://resource.example.org/x"
	testToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
)

// testAlgs are the algorithms the tests generate provers for.
var testAlgs = []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"}

var (
	proversOnce sync.Once
	proverSet   map[string]*dpoptest.Prover
	proversErr  error
)

// prover returns the shared test prover for alg; keys are generated once
// per test binary (RSA key generation is slow).
func prover(t testing.TB, alg string) *dpoptest.Prover {
	t.Helper()
	proversOnce.Do(func() {
		proverSet = map[string]*dpoptest.Prover{}
		for _, a := range testAlgs {
			p, err := dpoptest.NewProver(a)
			if err != nil {
				proversErr = err
				return
			}
			proverSet[a] = p
		}
	})
	if proversErr != nil {
		t.Fatal(proversErr)
	}
	p, ok := proverSet[alg]
	if !ok {
		t.Fatalf("no test prover for %s", alg)
	}
	return p
}

// memReplay is an in-memory Replay for tests and benchmarks.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newMemReplay() *memReplay { return &memReplay{seen: map[string]time.Time{}} }

func (m *memReplay) SpendDPoPJTI(_ context.Context, key string, exp time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[key]; ok {
		return false, nil
	}
	m.seen[key] = exp
	return true, nil
}

func (m *memReplay) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

// freshReplay says every proof is fresh: for the fuzz target and the
// crypto-only benchmark.
type freshReplay struct{}

func (freshReplay) SpendDPoPJTI(context.Context, string, time.Time) (bool, error) { return true, nil }

// failingReplay is a replay store that is down.
type failingReplay struct{}

var errStoreDown = errors.New("store down")

func (failingReplay) SpendDPoPJTI(context.Context, string, time.Time) (bool, error) {
	return false, errStoreDown
}

func openBolt(t testing.TB) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newVerifier(t testing.TB, replay dpop.Replay, opts dpop.Options) *dpop.Verifier {
	t.Helper()
	v, err := dpop.NewVerifier(replay, opts)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := uri.Normalize(raw)
	if err != nil {
		t.Fatalf("normalize %q: %v", raw, err)
	}
	return u
}

func mustProof(t testing.TB, p *dpoptest.Prover, method, htu, token string, opts ...dpoptest.ProofOption) string {
	t.Helper()
	proof, err := p.Proof(method, htu, token, opts...)
	if err != nil {
		t.Fatalf("minting a proof: %v", err)
	}
	return proof
}

// normalized is uri.Normalize for a URL known to be valid.
func normalized(raw string) *url.URL {
	u, err := uri.Normalize(raw)
	if err != nil {
		panic(err)
	}
	return u
}

// request is the default request a proof is checked against.
func request(t testing.TB, proofs ...string) dpop.Request {
	t.Helper()
	return dpop.Request{Proofs: proofs, Method: "GET", URL: mustURL(t, testURL), AccessToken: testToken}
}

// segments splits a compact proof.
func segments(t testing.TB, proof string) (header, payload, sig string) {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d segments", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

// withSignature replaces the signature of proof by f(signature).
func withSignature(t testing.TB, proof string, f func([]byte) []byte) string {
	t.Helper()
	h, p, s := segments(t, proof)
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(f(sig))
}

func wantCode(t testing.TB, err error, code, msg string) *dpop.Error {
	t.Helper()
	var de *dpop.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want *dpop.Error %s", err, err, code)
	}
	if de.Code != code {
		t.Fatalf("code = %s (%v), want %s", de.Code, de, code)
	}
	if msg != "" && !strings.Contains(de.Message, msg) {
		t.Fatalf("message = %q, want it to contain %q", de.Message, msg)
	}
	return de
}

// proverFromJWK returns a prover for the private key k.
func proverFromJWK(t testing.TB, alg string, k jwk.Key) *dpoptest.Prover {
	t.Helper()
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		t.Fatal(err)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		t.Fatalf("%T is not a signer", raw)
	}
	p, err := dpoptest.NewProverWithKey(alg, signer)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jtiOf reads the jti claim of a proof.
func jtiOf(t testing.TB, proof string) string {
	t.Helper()
	_, p, _ := segments(t, proof)
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}
