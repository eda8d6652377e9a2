package decision

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// BenchmarkFirstDecision measures the whole Go path of a token's first
// decision, as the decision API runs it for an allowed bearer request to
// the shipped policy: request normalisation, an ES256 signature and claim
// verification (the verified-token cache is emptied each time), the input,
// the evaluation with the pdp.* built-ins reading a real bbolt store, and
// the answer. Decisions are not reused and no sighting is written, so every
// iteration is a first use. BenchmarkFirstDecision/eval-only gives the
// policy's part of it.
func BenchmarkFirstDecision(b *testing.B) {
	ctx := context.Background()
	st, err := store.OpenBolt(b.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	builtins.SetStore(st)
	b.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})
	const iss, aud = "https://as.example.com", "https://api.example.com"
	issuer, err := devissuer.New(iss, "ES256")
	if err != nil {
		b.Fatal(err)
	}
	jwks := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, issuer.JWKS(), 0o600); err != nil {
		b.Fatal(err)
	}
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: iss, JWKSFile: jwks, Audiences: []string{aud}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{})
	if err != nil {
		b.Fatal(err)
	}
	engine := policy.NewEngine(nil)
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	if err := engine.Activate(ctx, set); err != nil {
		b.Fatal(err)
	}
	raw, err := issuer.Mint(map[string]any{"aud": aud, "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "jti": "j1"})
	if err != nil {
		b.Fatal(err)
	}
	decider := NewEngine(ctx, verifier, engine, Options{Environment: "prod", Timeout: 5 * time.Second})
	rawReq := RawRequest{Method: "GET", URL: "https://api.example.com/v1/accounts/42", RemoteIP: "203.0.113.7",
		Headers: map[string][]string{"authorization": {"Bearer " + raw}, "user-agent": {"bench/1"}}}
	decide := func() *Decision {
		req, err := NewRequest(rawReq)
		if err != nil {
			b.Fatal(err)
		}
		d, err := decider.Decide(ctx, req)
		if err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
		return d
	}
	first := decide()

	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			verifier.Forget(first.TokenHash)
			decide()
		}
	})
	b.Run("eval-only", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if res, _, err := engine.Eval(ctx, first.Input, now); err != nil || !res.Allow {
				b.Fatalf("eval: %v %+v", err, res)
			}
		}
	})
}
