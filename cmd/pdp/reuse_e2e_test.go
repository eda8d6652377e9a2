package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/memlimit"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// reuseEngine is a decision engine over the testbed's verifier, policy and
// store, with decision reuse on and a clock the test moves. It has no state
// writer: the tests write fingerprints themselves, so that no sighting lands
// behind their back.
func reuseEngine(tb *testbed, clock *time.Time, entries int) *decision.Engine {
	return decision.NewEngine(context.Background(), tb.app.verifier, tb.app.policy, decision.Options{
		Environment:  "prod",
		Timeout:      5 * time.Second,
		ReuseEntries: entries,
		ReuseTTL:     time.Hour,
		LogInputs:    true,
		Now:          func() time.Time { return *clock },
		Logger:       slog.New(slog.DiscardHandler),
	})
}

func reuseRequest(t testing.TB, tok, path, ip, ua string, extra map[string][]string) *decision.Request {
	t.Helper()
	h := map[string][]string{"authorization": {"Bearer " + tok}, "user-agent": {ua}}
	for k, v := range extra {
		h[k] = v
	}
	req, err := decision.NewRequest(decision.RawRequest{Method: "GET", URL: "https://api.example.com" + path, Headers: h, RemoteIP: ip})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func decideWith(t *testing.T, e *decision.Engine, req *decision.Request) *decision.Decision {
	t.Helper()
	d, err := e.Decide(t.Context(), req)
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	return d
}

func reasonCodes(d *decision.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestDecisionReuse(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	iss := tb.issuers["ES256"].URL()
	clock := time.Now()
	e := reuseEngine(tb, &clock, 1000)
	ctx := t.Context()

	reusedAfter := func(t *testing.T, req *decision.Request) (*decision.Decision, bool) {
		t.Helper()
		before := e.ReuseStats().Reused
		d := decideWith(t, e, req)
		if d.Reused != (e.ReuseStats().Reused == before+1) {
			t.Fatalf("Decision.Reused = %v, stats disagree", d.Reused)
		}
		return d, d.Reused
	}

	t.Run("ok/the same request again is answered from the kept decision", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-1"})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		if d, reused := reusedAfter(t, req); !d.Allow || reused {
			t.Fatalf("first: allow=%v reused=%v %v", d.Allow, reused, reasonCodes(d))
		}
		d, reused := reusedAfter(t, req)
		if !d.Allow || !reused || d.Token == nil || d.Token.Subject != "reuse-1" || d.Input == nil {
			t.Fatalf("second: allow=%v reused=%v token=%+v", d.Allow, reused, d.Token)
		}
	})

	t.Run("ok/a header the policy does not read does not matter", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-2"})
		decideWith(t, e, reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", map[string][]string{"x-request-id": {"a"}}))
		if _, reused := reusedAfter(t, reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", map[string][]string{"x-request-id": {"b"}})); !reused {
			t.Fatal("a new x-request-id was evaluated again")
		}
	})

	t.Run("fail/what the policy reads makes a new decision", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-3"})
		decideWith(t, e, reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil))
		for name, req := range map[string]*decision.Request{
			"path":       reuseRequest(t, tok, "/v1/accounts/2", "203.0.113.7", "app/1", nil),
			"query":      reuseRequest(t, tok, "/v1/accounts/1?x=1", "203.0.113.7", "app/1", nil),
			"client ip":  reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.8", "app/1", nil),
			"user-agent": reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/2", nil),
			"token":      reuseRequest(t, tb.mint(t, "ES256", map[string]any{"sub": "reuse-3"}), "/v1/accounts/1", "203.0.113.7", "app/1", nil),
		} {
			if _, reused := reusedAfter(t, req); reused {
				t.Errorf("another %s reused the decision", name)
			}
		}
	})

	t.Run("fail/a revocation applies to the very next request", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-4"})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		decideWith(t, e, req)
		if _, reused := reusedAfter(t, req); !reused {
			t.Fatal("not reused before the revocation")
		}
		if _, err := tb.app.store.PutRevocation(ctx, store.Revocation{Kind: store.KindSubject, Issuer: iss, Value: "reuse-4", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		d, reused := reusedAfter(t, req)
		if d.Allow || reused || !slices.Contains(reasonCodes(d), "subject_revoked") {
			t.Fatalf("after revocation: allow=%v reused=%v %v", d.Allow, reused, reasonCodes(d))
		}
	})

	t.Run("fail/a fingerprint written elsewhere applies to the very next request", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-5"})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		decideWith(t, e, req)
		if _, reused := reusedAfter(t, req); !reused {
			t.Fatal("not reused before the sighting")
		}
		// Another replica saw the token first, from another network.
		if err := tb.app.store.RecordFingerprint(ctx, tokenHash(tok), store.Sighting{IP: netip.MustParseAddr("198.51.100.9"), UserAgent: "app/1", ExpiresAt: time.Now().Add(5 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		d, reused := reusedAfter(t, req)
		if d.Allow || reused || !slices.Contains(reasonCodes(d), "token_replay_suspected") {
			t.Fatalf("after the sighting: allow=%v reused=%v %v", d.Allow, reused, reasonCodes(d))
		}
	})

	t.Run("fail/a decision is not reused past its valid_until", func(t *testing.T) {
		// Issued 59 minutes ago; max_age is 1h: too old two minutes on.
		issued := time.Now().Add(-59 * time.Minute)
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-6", "iat": issued.Unix(), "exp": issued.Add(time.Hour).Unix()})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		saved := clock
		defer func() { clock = saved }()
		if d := decideWith(t, e, req); !d.Allow {
			t.Fatalf("fresh: %v", reasonCodes(d))
		}
		clock = clock.Add(2 * time.Minute)
		d, reused := reusedAfter(t, req)
		if d.Allow || reused || !slices.Contains(reasonCodes(d), "token_too_old") {
			t.Fatalf("two minutes on: allow=%v reused=%v %v", d.Allow, reused, reasonCodes(d))
		}
	})

	t.Run("fail/a new policy version starts afresh", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-7"})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		decideWith(t, e, req)
		set, err := policy.LoadDir("../../rego", policy.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.app.policy.Activate(ctx, set); err != nil {
			t.Fatal(err)
		}
		if _, reused := reusedAfter(t, req); reused {
			t.Fatal("reused across a policy activation")
		}
	})

	t.Run("ok/a fresh DPoP proof of the same key reuses the decision; a replayed or foreign one does not", func(t *testing.T) {
		e := tb.app.decider // verifies and spends proofs
		prover, err := dpoptest.NewProver("ES256")
		if err != nil {
			t.Fatal(err)
		}
		other, err := dpoptest.NewProver("ES256")
		if err != nil {
			t.Fatal(err)
		}
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-dpop", "cnf": map[string]any{"jkt": prover.JKT()}})
		const url = "https://api.example.com/v1/accounts/1"
		request := func(p *dpoptest.Prover, proof string) *decision.Request {
			if proof == "" {
				var err error
				if proof, err = p.Proof("GET", url, tok); err != nil {
					t.Fatal(err)
				}
			}
			req, err := decision.NewRequest(decision.RawRequest{Method: "GET", URL: url, RemoteIP: "203.0.113.7",
				Headers: map[string][]string{"authorization": {"DPoP " + tok}, "dpop": {proof}}})
			if err != nil {
				t.Fatal(err)
			}
			return req
		}
		var reused []bool
		for range 3 {
			d := decideWith(t, e, request(prover, ""))
			if !d.Allow {
				t.Fatalf("fresh proof: %v", reasonCodes(d))
			}
			reused = append(reused, d.Reused)
		}
		if !slices.Equal(reused, []bool{false, true, true}) {
			t.Fatalf("reused = %v, want [false true true]", reused)
		}
		proof, err := prover.Proof("GET", url, tok)
		if err != nil {
			t.Fatal(err)
		}
		decideWith(t, e, request(prover, proof))
		if d := decideWith(t, e, request(prover, proof)); d.Allow || !slices.Contains(reasonCodes(d), "dpop_replayed") {
			t.Fatalf("replayed proof: allow=%v %v", d.Allow, reasonCodes(d))
		}
		if d := decideWith(t, e, request(other, "")); d.Allow || d.Reused {
			t.Fatalf("proof of another key: allow=%v reused=%v %v", d.Allow, d.Reused, reasonCodes(d))
		}
	})

	t.Run("fail/without reuse nothing is kept", func(t *testing.T) {
		off := reuseEngine(tb, &clock, 0)
		tok := tb.mint(t, "ES256", map[string]any{"sub": "reuse-8"})
		req := reuseRequest(t, tok, "/v1/accounts/1", "203.0.113.7", "app/1", nil)
		for range 3 {
			if d := decideWith(t, off, req); d.Reused {
				t.Fatal("reused with reuse off")
			}
		}
	})
}

// TestDecisionReuseMatchesEvaluation runs a random walk of requests and
// state changes through two engines on the same verifier, policy and store,
// one reusing decisions and one evaluating every request, and requires the
// same answer every time.
func TestDecisionReuseMatchesEvaluation(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	iss := tb.issuers["ES256"].URL()
	clock := time.Now()
	reusing, evaluating := reuseEngine(tb, &clock, 64), reuseEngine(tb, &clock, 0)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(7, 11))

	var toks []string
	for i := range 6 {
		issued := time.Now().Add(-time.Duration(i*11) * time.Minute)
		toks = append(toks, tb.mint(t, "ES256", map[string]any{
			"sub": fmt.Sprintf("walker-%d", i%3), "jti": fmt.Sprintf("w-%d", i),
			"iat": issued.Unix(), "exp": issued.Add(70 * time.Minute).Unix(),
		}))
	}
	paths := []string{"/v1/accounts/1", "/v1/accounts/2", "/v1/unknown"}
	ips := []string{"203.0.113.7", "203.0.113.200", "198.51.100.4"}
	uas := []string{"app/1", "app/2"}

	reused := 0
	for step := range 600 {
		switch rng.IntN(20) {
		case 0:
			sub := fmt.Sprintf("walker-%d", rng.IntN(3))
			if _, err := tb.app.store.PutRevocation(ctx, store.Revocation{Kind: store.KindSubject, Issuer: iss, Value: sub, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		case 1:
			tok := toks[rng.IntN(len(toks))]
			if err := tb.app.store.RecordFingerprint(ctx, tokenHash(tok), store.Sighting{
				IP: netip.MustParseAddr(ips[rng.IntN(len(ips))]), UserAgent: uas[rng.IntN(len(uas))], ExpiresAt: time.Now().Add(time.Hour),
			}); err != nil {
				t.Fatal(err)
			}
		case 2:
			clock = clock.Add(time.Duration(rng.IntN(180)) * time.Second)
		}
		req := reuseRequest(t, toks[rng.IntN(len(toks))], paths[rng.IntN(len(paths))], ips[rng.IntN(len(ips))], uas[rng.IntN(len(uas))],
			map[string][]string{"x-request-id": {fmt.Sprint(step)}})
		a, b := decideWith(t, reusing, req), decideWith(t, evaluating, req)
		if a.Reused {
			reused++
		}
		if a.Allow != b.Allow || a.Status != b.Status || !slices.Equal(reasonCodes(a), reasonCodes(b)) ||
			!slices.Equal(a.Warnings, b.Warnings) || fmt.Sprint(a.UpstreamHeaders) != fmt.Sprint(b.UpstreamHeaders) {
			t.Fatalf("step %d: reusing engine said allow=%v %v (reused %v), evaluating engine allow=%v %v",
				step, a.Allow, reasonCodes(a), a.Reused, b.Allow, reasonCodes(b))
		}
	}
	if reused == 0 {
		t.Fatal("the walk never reused a decision: it tests nothing")
	}
	t.Logf("%d of 600 decisions reused", reused)
}

// TestDecisionReuseIsReported checks that /metrics and /v1/status count
// reused decisions.
func TestDecisionReuseIsReported(t *testing.T) {
	tb := newTestbed(t, nil)
	tok := tb.mint(t, "ES256", nil)
	for range 3 {
		if d := tb.decide(t, bearer(tok), nil); !d.Allow {
			t.Fatalf("decision: %v", d.codes())
		}
	}
	// The first sighting is written behind the first decision: the second
	// may still see the token unseen, or already seen (and evaluate again).
	resp, err := http.Get(tb.pdp.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		DecisionCache decision.ReuseStats     `json:"decision_cache"`
		Sightings     *decision.SightingStats `json:"sightings"`
		TokenCache    token.CacheStats        `json:"token_cache"`
		Runtime       struct {
			MemoryLimit memlimit.Limit `json:"memory_limit"`
		} `json:"runtime"`
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	st := status.DecisionCache
	if err != nil || st.Reused < 1 || st.Reused+st.Evaluated != 3 || st.Entries != 1 || st.Bytes <= 0 || st.MaxBytes != 32<<20 {
		t.Fatalf("/v1/status decision_cache = %+v (%v)", st, err)
	}
	if sg := status.Sightings; sg == nil || sg.Dropped != 0 || sg.Failed != 0 {
		t.Errorf("/v1/status sightings = %+v, want an object with none lost", sg)
	}
	if tc := status.TokenCache; tc.Entries != 1 || tc.Bytes <= 0 || tc.MaxBytes != 64<<20 || tc.MaxEntries != 100_000 {
		t.Fatalf("/v1/status token_cache = %+v", tc)
	}
	if ml := status.Runtime.MemoryLimit; ml.Source == "" {
		t.Fatalf("/v1/status runtime.memory_limit = %+v", ml)
	}
	resp, err = http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`pdp_decision_cache_total{result="hit"} %d`, st.Reused),
		fmt.Sprintf(`pdp_decision_cache_total{result="miss"} %d`, st.Evaluated),
		"pdp_sightings_dropped_total 0",
		"pdp_sightings_failed_total 0",
		fmt.Sprintf("pdp_decision_cache_entries %d", st.Entries),
		fmt.Sprintf("pdp_decision_cache_bytes %d", st.Bytes),
		"pdp_decision_cache_max_bytes 3.3554432e+07",
		fmt.Sprintf("pdp_token_cache_bytes %d", status.TokenCache.Bytes),
		"pdp_token_cache_entries 1",
		"pdp_token_cache_max_bytes 6.7108864e+07",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
