package decision

import (
	"context"
	"crypto/sha256"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// explainRig is the whole pipeline on the shipped policy, a real bbolt
// store, a real token verifier and a real DPoP verifier, with decision
// reuse on.
type explainRig struct {
	st      *store.Bolt
	issuer  *devissuer.Issuer
	prover  *dpoptest.Prover
	decider *Engine
}

const (
	rigIss = "https://as.example.com"
	rigAud = "https://api.example.com"
	rigURL = "https://api.example.com/v1/accounts/42"
)

func newExplainRig(t *testing.T) *explainRig {
	t.Helper()
	ctx := t.Context()
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	builtins.SetStore(st)
	t.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})
	issuer, err := devissuer.New(rigIss, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: rigIss, JWKSFile: jwks, Audiences: []string{rigAud}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(nil)
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	proofs, err := dpop.NewVerifier(st, dpop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prover, err := dpoptest.NewProver("ES256")
	if err != nil {
		t.Fatal(err)
	}
	decider := NewEngine(ctx, verifier, engine, Options{
		Environment: "prod", Timeout: 10 * time.Second, State: st, Proofs: proofs,
		ReuseEntries: 100, ReuseTTL: time.Minute,
	})
	return &explainRig{st: st, issuer: issuer, prover: prover, decider: decider}
}

func (r *explainRig) mint(t *testing.T, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	base := map[string]any{"aud": rigAud, "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "sid": "s-1"}
	for k, v := range claims {
		base[k] = v
	}
	raw, err := r.issuer.Mint(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func request(t *testing.T, raw RawRequest) *Request {
	t.Helper()
	req, err := NewRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// fileSum is the SHA-256 of the store's file once the sightings queued
// have been written.
func (r *explainRig) fileSum(t *testing.T) [32]byte {
	t.Helper()
	for r.decider.SightingStats().Queued > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * sightingWindow) // a batch being written
	raw, err := os.ReadFile(r.st.Path())
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// TestExplainWritesNothing explains requests for which /v1/decide writes
// each of its writes, and checks on the real store that none happened,
// that the answer lists it as left undone, and that the decision is the
// one /v1/decide then makes.
func TestExplainWritesNothing(t *testing.T) {
	tests := []struct {
		name string
		// setup prepares the store (a first use), build the request.
		setup func(t *testing.T, r *explainRig) RawRequest
		// unwritten: the writes the explanation must list
		unwritten []string
		allow     bool
		// check looks at the store after the explanation.
		check func(t *testing.T, r *explainRig, req RawRequest)
	}{
		{
			name: "ok/bearer token: no sighting, decision cache untouched",
			setup: func(t *testing.T, r *explainRig) RawRequest {
				return RawRequest{Method: "GET", URL: rigURL, RemoteIP: "203.0.113.7",
					Headers: map[string][]string{"authorization": {"Bearer " + r.mint(t, nil)}, "user-agent": {"test/1"}}}
			},
			unwritten: []string{WriteDecisionKept, WriteSighting},
			allow:     true,
			check: func(t *testing.T, r *explainRig, req RawRequest) {
				hash := token.HashToken(req.Headers["authorization"][0][len("Bearer "):])
				if _, seen, err := r.st.LastSeen(t.Context(), hash); err != nil || seen {
					t.Errorf("LastSeen = %v, %v: a sighting was recorded", seen, err)
				}
				if st := r.decider.ReuseStats(); st.Entries != 0 || st.Evaluated != 0 || st.Reused != 0 {
					t.Errorf("reuse stats %+v: the decision cache was used", st)
				}
			},
		},
		{
			name: "ok/DPoP proof: its jti is not spent",
			setup: func(t *testing.T, r *explainRig) RawRequest {
				at := r.mint(t, map[string]any{"cnf": map[string]any{"jkt": r.prover.JKT()}})
				proof, err := r.prover.Proof("GET", rigURL, at)
				if err != nil {
					t.Fatal(err)
				}
				return RawRequest{Method: "GET", URL: rigURL, RemoteIP: "203.0.113.7",
					Headers: map[string][]string{"authorization": {"DPoP " + at}, "dpop": {proof}}}
			},
			unwritten: []string{WriteDecisionKept, WriteDPoPJTI},
			allow:     true,
			check: func(t *testing.T, r *explainRig, req RawRequest) {
				// the same proof is still good for the decision
				d, err := r.decider.Decide(t.Context(), request(t, req))
				if err != nil || !d.Allow {
					t.Errorf("decide with the explained proof: allow %v %v %v: its jti was spent", d.Allow, d.Reasons, err)
				}
			},
		},
		{
			name: "fail/DPoP proof spent before: a replay, said so, still nothing written",
			setup: func(t *testing.T, r *explainRig) RawRequest {
				at := r.mint(t, map[string]any{"cnf": map[string]any{"jkt": r.prover.JKT()}})
				proof, err := r.prover.Proof("GET", rigURL, at)
				if err != nil {
					t.Fatal(err)
				}
				raw := RawRequest{Method: "GET", URL: rigURL, RemoteIP: "203.0.113.7",
					Headers: map[string][]string{"authorization": {"DPoP " + at}, "dpop": {proof}}}
				if d, err := r.decider.Decide(t.Context(), request(t, raw)); err != nil || !d.Allow {
					t.Fatalf("first use: %+v %v", d, err)
				}
				return raw
			},
			unwritten: []string{WriteDecisionKept, WriteDPoPJTI},
		},
		{
			name: "ok/refresh token: its use is not recorded",
			setup: func(t *testing.T, r *explainRig) RawRequest {
				rt := r.mint(t, map[string]any{"jti": "rt-1"}, devissuer.WithHeader("typ", "JWT"))
				return RawRequest{Method: "POST", URL: "https://as.example.com/token", RemoteIP: "203.0.113.7",
					Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}}
			},
			unwritten: []string{WriteRefreshUse},
			allow:     true,
			check: func(t *testing.T, r *explainRig, req RawRequest) {
				hash := token.HashToken(req.Form.Get("refresh_token"))
				if _, err := r.st.FindFamily(t.Context(), hash); err == nil {
					t.Error("the refresh token's use was recorded")
				}
			},
		},
		{
			name: "fail/refresh token reused: the session revocation is not written",
			setup: func(t *testing.T, r *explainRig) RawRequest {
				rt := r.mint(t, map[string]any{"jti": "rt-2"}, devissuer.WithHeader("typ", "JWT"))
				raw := RawRequest{Method: "POST", URL: "https://as.example.com/token", RemoteIP: "203.0.113.7",
					Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}}
				if d, err := r.decider.Decide(t.Context(), request(t, raw)); err != nil || !d.Allow {
					t.Fatalf("first use: %+v %v", d, err)
				}
				raw.RemoteIP = "198.51.100.9" // not a retry from where it came from
				return raw
			},
			unwritten: []string{WriteRefreshUse, WriteRevocation},
			check: func(t *testing.T, r *explainRig, _ RawRequest) {
				rs, err := r.st.ListRevocations(t.Context(), store.RevocationFilter{})
				if err != nil || len(rs) != 0 {
					t.Errorf("revocations %+v, %v: the reuse revoked", rs, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newExplainRig(t)
			raw := tt.setup(t, r)
			before := r.fileSum(t)
			x, err := r.decider.Explain(t.Context(), request(t, raw))
			if err != nil {
				t.Fatal(err)
			}
			if after := r.fileSum(t); after != before {
				t.Error("the store's file changed")
			}
			if x.Decision.Allow != tt.allow || !x.Decision.Explain {
				t.Errorf("decision allow %v (reasons %v), explain %v; want allow %v, explain", x.Decision.Allow, x.Decision.Reasons, x.Decision.Explain, tt.allow)
			}
			var got []string
			for _, u := range x.Unwritten {
				got = append(got, u.Write)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.unwritten) {
				t.Errorf("unwritten %v (%+v), want %v", got, x.Unwritten, tt.unwritten)
			}
			if len(x.Explanation) == 0 {
				t.Error("no explanation")
			}
			if tt.check != nil {
				tt.check(t, r, raw)
			}
		})
	}
}

// The explained decision is the decision: explaining and then deciding the
// same request give the same answer.
func TestExplainAnswersAsDecide(t *testing.T) {
	r := newExplainRig(t)
	long := r.mint(t, map[string]any{"exp": time.Now().Add(3 * time.Hour).Unix()})
	raw := RawRequest{Method: "GET", URL: rigURL, RemoteIP: "203.0.113.7", Headers: map[string][]string{"authorization": {"Bearer " + long}}}
	x, err := r.decider.Explain(context.Background(), request(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.decider.Decide(context.Background(), request(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Allow || d.Allow || !slices.Equal(x.Decision.Reasons, d.Reasons) || x.Decision.Status != d.Status {
		t.Errorf("explained %v %d %v, decided %v %d %v", x.Decision.Allow, x.Decision.Status, x.Decision.Reasons, d.Allow, d.Status, d.Reasons)
	}
	var lifetime *policy.Explanation
	for i := range x.Explanation {
		if x.Explanation[i].Guardrail == "lifetime" {
			lifetime = &x.Explanation[i]
		}
	}
	if lifetime == nil || lifetime.Code != "lifetime_exceeded" || lifetime.Outcome != policy.OutcomeDeny ||
		lifetime.Values["lifetime_s"] == nil || lifetime.Values["max_lifetime_s"] == nil {
		t.Errorf("lifetime explained as %+v", lifetime)
	}
}
