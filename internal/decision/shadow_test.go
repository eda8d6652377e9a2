package decision

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// shadowRig is the shipped policy deciding with a real verifier and bbolt
// store, and a shadow engine loaded from a copy of it.
type shadowRig struct {
	decider *Engine
	shadow  *policy.Engine
	store   *store.Bolt
	raw     RawRequest
}

// newShadowRig starts a rig; edit changes the shadow's copy of data.json.
func newShadowRig(t testing.TB, opts Options, edit func(data string) string) *shadowRig {
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
	const iss, aud = "https://as.example.com", "https://api.example.com"
	issuer, err := devissuer.New(iss, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: iss, JWKSFile: jwks, Audiences: []string{aud}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	active := policy.NewEngine(nil)
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := active.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	shadow := policy.NewEngine(nil)
	if err := shadow.Activate(ctx, copyPolicy(t, "../../rego", edit)); err != nil {
		t.Fatal(err)
	}
	raw, err := issuer.Mint(map[string]any{"aud": aud, "sub": "alice", "client_id": "web-app", "scope": "accounts:read"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Environment, opts.Timeout, opts.State = "prod", 5*time.Second, st
	return &shadowRig{
		decider: NewEngine(ctx, verifier, active, opts), shadow: shadow, store: st,
		raw: RawRequest{Method: "GET", URL: "https://api.example.com/v1/accounts/42", RemoteIP: "203.0.113.7",
			Headers: map[string][]string{"authorization": {"Bearer " + raw}, "user-agent": {"test/1"}}},
	}
}

// copyPolicy loads a copy of dir whose data.json went through edit.
func copyPolicy(t testing.TB, dir string, edit func(string) string) *policy.Set {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "policy")
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dst, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		data = []byte(edit(string(data)))
	}
	if err := os.WriteFile(filepath.Join(dst, "data.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.LoadDir(dst, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// tighterLifetime makes the default lifetime limit shorter than the 5
// minutes of a minted token.
func tighterLifetime(data string) string {
	return strings.Replace(data, `"default": {"max_lifetime": "1h"`, `"default": {"max_lifetime": "2m"`, 1)
}

func (r *shadowRig) decide(t testing.TB) *Decision {
	t.Helper()
	req, err := NewRequest(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.decider.Decide(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// shadowCounts is a ShadowObserver that counts.
type shadowCounts struct {
	mu            sync.Mutex
	results       map[string]int
	disagreements []string
	logged        []Disagreement
}

func newShadowCounts() *shadowCounts { return &shadowCounts{results: map[string]int{}} }

func (c *shadowCounts) ObserveShadow(result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results[result]++
}

func (c *shadowCounts) ObserveShadowDisagreement(active, shadow bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	outcome := func(allow bool) string {
		if allow {
			return "allow"
		}
		return "deny"
	}
	c.disagreements = append(c.disagreements, outcome(active)+"/"+outcome(shadow)+"/"+reason)
}

func (c *shadowCounts) disagreed(d Disagreement) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logged = append(c.logged, d)
}

func TestShadowComparesWithoutChangingTheAnswer(t *testing.T) {
	tests := []struct {
		name          string
		edit          func(string) string
		results       map[string]int
		disagreements []string
	}{
		{"ok/the same policy agrees", nil, map[string]int{ShadowAgree: 1}, nil},
		{"ok/a tighter lifetime denies what the active policy allowed", tighterLifetime,
			map[string]int{ShadowDisagree: 1}, []string{"allow/deny/lifetime_exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newShadowRig(t, Options{}, tt.edit)
			counts := newShadowCounts()
			sh := NewShadow(t.Context(), rig.shadow, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Timeout: 5 * time.Second,
				Observer: counts, Disagreed: counts.disagreed})
			d := rig.decide(t)
			d.ID = "the-transports-id"
			sh.Offer(d)
			sh.Wait()
			if !d.Allow || d.Status != 200 || len(d.Reasons) != 0 {
				t.Fatalf("the answer changed: %+v", d)
			}
			if !mapsEqual(counts.results, tt.results) || strings.Join(counts.disagreements, ",") != strings.Join(tt.disagreements, ",") {
				t.Fatalf("results %v disagreements %v, want %v %v", counts.results, counts.disagreements, tt.results, tt.disagreements)
			}
			st := sh.Status()
			if st.Decisions != 1 || st.Disagreements != int64(len(tt.disagreements)) || st.LastError != "" {
				t.Errorf("status = %+v", st)
			}
			if len(tt.disagreements) == 0 {
				return
			}
			got := counts.logged[0]
			if got.Decision != d || got.Decision.ID != "the-transports-id" || got.Shadow.Allow || got.Shadow.Status != 401 ||
				got.Shadow.Reasons[0].Code != "lifetime_exceeded" || got.Reason != "lifetime_exceeded" {
				t.Errorf("disagreement = %+v, shadow %+v", got, got.Shadow)
			}
		})
	}
}

// effectPolicy denies every request and asks for the subject's revocation.
const effectPolicy = `package tokenguard.main

decision := {
	"allow": false, "status": 403,
	"reasons": [{"code": "subject_revoked", "message": "revoked by the shadow"}],
	"effects": [{"revoke": {"kind": "subject", "iss": "https://as.example.com", "value": "alice", "reason": "shadow"}}],
}
`

func TestShadowWritesNoState(t *testing.T) {
	rig := newShadowRig(t, Options{}, nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.rego"), []byte(effectPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.LoadDir(dir, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rig.shadow.Activate(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	counts := newShadowCounts()
	sh := NewShadow(t.Context(), rig.shadow, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Timeout: 5 * time.Second, Observer: counts})
	d := rig.decide(t)
	sh.Offer(d)
	sh.Wait()
	if counts.results[ShadowDisagree] != 1 {
		t.Fatalf("results = %v, want one disagreement", counts.results)
	}
	_, revoked, err := rig.store.CheckRevocation(t.Context(), store.TokenRef{Issuer: "https://as.example.com", Subject: "alice"})
	if err != nil || revoked {
		t.Fatalf("the shadow's effect was applied: revoked %v, err %v", revoked, err)
	}
	if again := rig.decide(t); !again.Allow {
		t.Fatalf("the next decision = %+v, want the active policy's allow", again)
	}
}

// blockedShadow is the shadow engine behind a gate: every evaluation
// waits until the gate opens.
type blockedShadow struct {
	engine  *policy.Engine
	entered chan struct{}
	gate    chan struct{}
}

func (b *blockedShadow) Eval(ctx context.Context, input ast.Value, now time.Time) (policy.Result, string, error) {
	b.entered <- struct{}{}
	<-b.gate
	return b.engine.Eval(ctx, input, now)
}

func TestShadowNeverHoldsUpAnAnswer(t *testing.T) {
	rig := newShadowRig(t, Options{}, tighterLifetime)
	blocked := &blockedShadow{engine: rig.shadow, entered: make(chan struct{}, 8), gate: make(chan struct{})}
	counts := newShadowCounts()
	sh := NewShadow(t.Context(), blocked, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Timeout: 5 * time.Second, Observer: counts})
	sh.Offer(rig.decide(t))
	<-blocked.entered // the one slot is taken, and stays taken
	for range 3 {
		d := rig.decide(t)
		sh.Offer(d) // returns at once: the decision is skipped
		if !d.Allow {
			t.Fatalf("decision = %+v", d)
		}
	}
	if counts.results[ShadowSkipped] != 3 {
		t.Fatalf("results = %v, want 3 skipped while the shadow is blocked", counts.results)
	}
	close(blocked.gate)
	sh.Wait()
	if counts.results[ShadowDisagree] != 1 || len(blocked.entered) != 0 {
		t.Fatalf("results = %v, want the blocked one evaluated alone", counts.results)
	}
}

func TestShadowSeesOnlyEvaluatedDecisions(t *testing.T) {
	t.Run("ok/a reused decision is not offered", func(t *testing.T) {
		rig := newShadowRig(t, Options{ReuseEntries: 100, ReuseTTL: time.Minute, LogInputs: true}, tighterLifetime)
		counts := newShadowCounts()
		sh := NewShadow(t.Context(), rig.shadow, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Timeout: 5 * time.Second, Observer: counts})
		// Sightings change what pdp.last_seen answers for a while: decide
		// until a decision is reused; every one is offered.
		evaluated, reused := 0, 0
		for range 5 {
			d := rig.decide(t)
			sh.Offer(d)
			sh.Wait()
			if !d.Reused {
				evaluated++
				continue
			}
			if d.Input == nil {
				t.Fatal("a reused decision without its input, with LogInputs")
			}
			reused++
		}
		if reused == 0 {
			t.Fatal("no decision was reused")
		}
		if counts.results[ShadowDisagree] != evaluated || len(counts.results) != 1 {
			t.Fatalf("results = %v, want the %d evaluated decisions alone", counts.results, evaluated)
		}
	})
	t.Run("ok/sample rate 0 offers none", func(t *testing.T) {
		rig := newShadowRig(t, Options{}, tighterLifetime)
		counts := newShadowCounts()
		sh := NewShadow(t.Context(), rig.shadow, ShadowOptions{SampleRate: 0, MaxConcurrency: 1, Observer: counts})
		sh.Offer(rig.decide(t))
		sh.Wait()
		if len(counts.results) != 0 {
			t.Fatalf("results = %v, want none", counts.results)
		}
	})
	t.Run("ok/a decision denied before evaluation is not offered", func(t *testing.T) {
		rig := newShadowRig(t, Options{}, tighterLifetime)
		counts := newShadowCounts()
		sh := NewShadow(t.Context(), rig.shadow, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Observer: counts})
		rig.raw.URL = "https://api.example.com/v1/accounts/a%2Fb"
		d := rig.decide(t)
		sh.Offer(d)
		sh.Wait()
		if d.Allow || len(counts.results) != 0 {
			t.Fatalf("decision %+v, results %v, want a deny not offered", d, counts.results)
		}
	})
	t.Run("fail/no shadow version active is an error, not an answer", func(t *testing.T) {
		rig := newShadowRig(t, Options{}, nil)
		counts := newShadowCounts()
		sh := NewShadow(t.Context(), policy.NewEngine(nil), ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Observer: counts})
		d := rig.decide(t)
		sh.Offer(d)
		sh.Wait()
		if !d.Allow || counts.results[ShadowError] != 1 || sh.Status().LastError != "no shadow policy is active" {
			t.Fatalf("decision %+v, results %v, status %+v", d, counts.results, sh.Status())
		}
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// BenchmarkShadowOffer measures what a shadow adds to the answer path: the
// hand-off of an answered decision when it is sampled out, when every
// evaluation slot is busy (skipped), and when it starts an evaluation (the
// evaluation itself then runs beside the next answers: see
// BenchmarkFirstDecision/eval-only for its CPU).
func BenchmarkShadowOffer(b *testing.B) {
	rig := newShadowRig(b, Options{}, nil)
	d := rig.decide(b)
	b.Run("sampled-out", func(b *testing.B) {
		sh := NewShadow(b.Context(), rig.shadow, ShadowOptions{SampleRate: 0, MaxConcurrency: 1})
		b.ReportAllocs()
		for b.Loop() {
			sh.Offer(d)
		}
	})
	b.Run("skipped", func(b *testing.B) {
		blocked := &blockedShadow{engine: rig.shadow, entered: make(chan struct{}, 1), gate: make(chan struct{})}
		sh := NewShadow(b.Context(), blocked, ShadowOptions{SampleRate: 1, MaxConcurrency: 1})
		sh.Offer(d)
		<-blocked.entered
		b.ReportAllocs()
		for b.Loop() {
			sh.Offer(d)
		}
		b.StopTimer()
		close(blocked.gate)
		sh.Wait()
	})
	b.Run("evaluated-and-waited-for", func(b *testing.B) {
		sh := NewShadow(b.Context(), rig.shadow, ShadowOptions{SampleRate: 1, MaxConcurrency: 1, Timeout: 5 * time.Second})
		b.ReportAllocs()
		for b.Loop() {
			sh.Offer(d)
			sh.Wait() // one at a time: each offer starts an evaluation
		}
	})
}
