package decision

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// TestNewPolicyVersionReplacesKeptDecisionsWithinTheSpread: after a policy
// version is activated, a decision kept under the one it replaced is still
// answered until its grace within decision_cache.version_spread has passed
// (so that a busy replica re-evaluates its warm tokens over that time, not
// at once), never after it, never with the spread off, and never once the
// token is revoked: the store's answers are checked again on every reuse.
func TestNewPolicyVersionReplacesKeptDecisionsWithinTheSpread(t *testing.T) {
	const spread = 10 * time.Second
	for _, tc := range []struct {
		name   string
		spread time.Duration
		// at is when the request after the activation comes, after the
		// new version's activation.
		at     time.Duration
		revoke bool
		// reused: answered from the decision of the replaced version.
		reused bool
	}{
		{name: "ok/right after the activation the kept decision is answered", spread: spread, at: 0, reused: true},
		{name: "ok/once the spread has passed it is evaluated again", spread: spread, at: spread},
		{name: "ok/with the spread off a new version applies at once", spread: 0, at: 0},
		{name: "ok/a revocation applies within the spread", spread: spread, at: 0, revoke: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSpreadFixture(t, tc.spread)
			first := f.decide(t)
			if !first.Allow {
				t.Fatalf("first decision: %+v", first)
			}
			if d := f.decide(t); d.Policy.Revision != first.Policy.Revision || f.decider.ReuseStats().Reused != 1 {
				t.Fatalf("the second request was not answered from the kept decision: %+v", f.decider.ReuseStats())
			}
			f.activate(t, "v2")
			f.clock.Store(f.engine.Settings().Reuse.Activated.Add(tc.at).UnixNano())
			if tc.revoke {
				if _, err := f.store.PutRevocation(context.Background(), store.Revocation{Kind: store.KindSubject, Issuer: spreadIssuer,
					Value: "alice", NotBefore: f.now().Add(time.Minute), ExpiresAt: f.now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}
			before := f.decider.ReuseStats()
			d := f.decide(t)
			after := f.decider.ReuseStats()
			reused := after.Reused == before.Reused+1
			switch {
			case tc.revoke:
				if d.Allow || reused {
					t.Fatalf("a revoked token after the activation: allow %v, reused %v", d.Allow, reused)
				}
			case reused != tc.reused:
				t.Fatalf("reused = %v, want %v (stats %+v → %+v)", reused, tc.reused, before, after)
			case reused && d.Policy.Revision != "v1":
				t.Fatalf("a decision of the replaced version answered as revision %q", d.Policy.Revision)
			case !reused && d.Policy.Revision != "v2":
				t.Fatalf("an evaluated decision of revision %q, want v2", d.Policy.Revision)
			}
		})
	}
}

const spreadIssuer = "https://as.example.com"

type spreadFixture struct {
	engine  *policy.Engine
	decider *Engine
	store   *store.Bolt
	clock   atomic.Int64
	raw     string
	set     *policy.Set
}

func (f *spreadFixture) now() time.Time { return time.Unix(0, f.clock.Load()) }

func newSpreadFixture(t *testing.T, spread time.Duration) *spreadFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	builtins.SetStore(st)
	t.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})
	const aud = "https://api.example.com"
	issuer, err := devissuer.New(spreadIssuer, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: spreadIssuer, JWKSFile: jwks, Audiences: []string{aud}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &spreadFixture{engine: policy.NewEngine(nil), store: st}
	f.clock.Store(time.Now().UnixNano())
	if f.set, err = policy.LoadDir("../../rego", policy.Limits{}); err != nil {
		t.Fatal(err)
	}
	f.activate(t, "v1")
	f.clock.Store(f.engine.Settings().Reuse.Activated.UnixNano())
	if f.raw, err = issuer.Mint(map[string]any{"aud": aud, "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "jti": "j1"}); err != nil {
		t.Fatal(err)
	}
	// No State: no sightings are recorded, so the second request finds the
	// store as the first did and reuses its decision at once.
	f.decider = NewEngine(ctx, verifier, f.engine, Options{Environment: "prod", Timeout: 5 * time.Second,
		ReuseEntries: 100, ReuseTTL: time.Minute, ReuseVersionSpread: spread, Now: f.now})
	return f
}

func (f *spreadFixture) activate(t *testing.T, revision string) {
	t.Helper()
	set := *f.set
	set.Revision = revision
	if err := f.engine.Activate(context.Background(), &set); err != nil {
		t.Fatal(err)
	}
}

func (f *spreadFixture) decide(t *testing.T) *Decision {
	t.Helper()
	req, err := NewRequest(RawRequest{Method: "GET", URL: "https://api.example.com/v1/accounts/42", RemoteIP: "203.0.113.7",
		Headers: map[string][]string{"authorization": {"Bearer " + f.raw}, "user-agent": {"test/1"}}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.decider.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
