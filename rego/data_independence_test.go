package rego_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/tokenguard/pdp/internal/builtins"
)

// TestModuleTestsDoNotDependOnThePolicyData runs the shipped Rego tests
// with data.json edited as users edit it: every setting changed to another
// valid value, the data emptied, and the dev flow's route, roles and client
// changed. The module tests use fixture data of their own and must all
// pass; only data_test.rego, which checks the user's data for the dev
// flow, may fail, and only where the edit refuses that flow.
func TestModuleTestsDoNotDependOnThePolicyData(t *testing.T) {
	builtins.SetStore(builtins.Empty)
	t.Cleanup(func() { builtins.SetStore(nil) })
	const devFlow = "data.tokenguard.data_test.test_data_allows_the_dev_flow_get_accounts_with_scope_accounts_read"
	for _, tc := range []struct {
		name string
		edit func(pdp map[string]any)
		// devFlowFails: the edit refuses the README's dev flow.
		devFlowFails bool
	}{
		{name: "as shipped", edit: func(map[string]any) {}},
		{name: "every setting changed, the dev flow kept", edit: func(p map[string]any) {
			p["realm"] = "accounts"
			p["grant_type_claim"] = "grant"
			p["grant_types"] = map[string]any{"allowed": []any{"authorization_code", "refresh_token"}}
			p["dpop"] = map[string]any{"algs": []any{"ES512"}}
			p["unknown_routes"] = "allow"
			p["lifetimes"] = map[string]any{
				"default":     map[string]any{"max_lifetime": "30m", "max_age": "30m"},
				"grant_types": map[string]any{"client_credentials": map[string]any{"max_lifetime": "1m"}},
				"clients":     map[string]any{"web": map[string]any{"max_lifetime": "1m"}, "svc": map[string]any{"max_lifetime": "1m"}},
			}
			p["clients"] = map[string]any{
				"web":     map[string]any{"allowed_cidrs": []any{"192.0.2.0/24"}, "sender_constraint": "mtls"},
				"svc":     map[string]any{"sender_constraint": "dpop"},
				"billing": map[string]any{"allowed_cidrs": []any{"192.0.2.0/24"}},
			}
			p["fingerprint"] = map[string]any{"ipv4_prefix": 32, "ipv6_prefix": 128}
			p["modes"] = map[string]any{"dpop": "monitor", "fingerprint": "monitor", "lifetime": "monitor", "scope": "monitor"}
			p["token_endpoint"] = map[string]any{"url": "https://other.example/token", "refresh_reuse": "deny", "refresh_max_age": "1m"}
			p["token_exchange"] = map[string]any{"max_delegation_depth": 0}
		}},
		{name: "no policy data", edit: func(p map[string]any) { clear(p) }, devFlowFails: true},
		{name: "no routes", edit: func(p map[string]any) { p["routes"] = []any{} }, devFlowFails: true},
		{name: "accounts:read no longer a role's", edit: func(p map[string]any) {
			p["environments"] = map[string]any{"prod": map[string]any{"roles": map[string]any{"user": []any{"accounts:list"}}, "default_roles": []any{"user"}}}
		}, devFlowFails: true},
		{name: "the dev client bound to mTLS", edit: func(p map[string]any) {
			p["clients"] = map[string]any{"dev-client": map[string]any{"sender_constraint": "mtls"}}
		}, devFlowFails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyPolicy(t, tc.edit)
			failed := runRegoTests(t, dir)
			want := []string{}
			if tc.devFlowFails {
				want = []string{devFlow}
			}
			if !slices.Equal(failed, want) {
				t.Errorf("failed tests = %q, want %q", failed, want)
			}
		})
	}
}

// copyPolicy copies this directory's Rego files and data.json, the latter
// edited, into a temporary directory.
func copyPolicy(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".rego" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	edit(data["pdp"])
	if b, err = json.Marshal(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runRegoTests runs the Rego tests in dir as `opa test` does and returns
// the names of those that did not pass, sorted.
func runRegoTests(t *testing.T, dir string) []string {
	t.Helper()
	modules, store, err := tester.Load([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().SetStore(store).SetModules(modules).RunTests(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	ran := 0
	for r := range ch {
		ran++
		if !r.Pass() {
			failed[r.Package+"."+r.Name] = true
		}
	}
	if ran < 100 {
		t.Fatalf("ran %d tests, expected the shipped suite", ran)
	}
	return slices.Sorted(maps.Keys(failed))
}
