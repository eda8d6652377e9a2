package policy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/builtins"
)

// benchRoutes returns n routes that a GET of api.example.com/v1/accounts/42
// does not match, none of them shadowing another or a shipped route: a mix
// of exact paths, "*" globs, "**" prefixes, host-specific (by name and by
// "*." wildcard) and method-specific routes.
func benchRoutes(n int) []any {
	routes := make([]any, 0, n)
	for i := range n {
		var r map[string]any
		switch i % 6 {
		case 0:
			r = map[string]any{"path": fmt.Sprintf("/v1/svc%d/items/list", i)}
		case 1:
			r = map[string]any{"path": fmt.Sprintf("/v1/svc%d/items/*", i), "methods": []any{"GET", "PUT"}}
		case 2:
			r = map[string]any{"path": fmt.Sprintf("/v2/svc%d/**", i)}
		case 3:
			r = map[string]any{"path": "/v1/**", "host": fmt.Sprintf("h%d.example.com", i)}
		case 4:
			r = map[string]any{"path": "/v1/accounts/*", "host": fmt.Sprintf("*.t%d.example.com", i)}
		case 5:
			r = map[string]any{"path": fmt.Sprintf("/v1/accounts/*/op%d", i), "methods": []any{"DELETE"}}
		}
		r["name"] = fmt.Sprintf("route %d", i)
		r["audience"] = "https://api.example.com"
		r["scopes"] = []any{"accounts:read"}
		routes = append(routes, r)
	}
	return routes
}

// withRoutes puts n-1 routes (benchRoutes) before the set's own; for n < 0,
// -n clients, environments, and roles in each environment besides the
// set's own instead (the data a decision looks up by key).
func withRoutes(tb testing.TB, set *Set, n int) {
	tb.Helper()
	pdp, ok := set.Data["pdp"].(map[string]any)
	if !ok {
		tb.Fatal("the policy set has no data.pdp")
	}
	if n < 0 {
		clients, _ := pdp["clients"].(map[string]any)
		envs, _ := pdp["environments"].(map[string]any)
		for i := range -n {
			clients[fmt.Sprintf("client-%d", i)] = map[string]any{"sender_constraint": "dpop", "modes": map[string]any{"lifetime": "monitor"}}
			envs[fmt.Sprintf("env-%d", i)] = map[string]any{"default_roles": []any{"user"}}
			for _, env := range envs {
				if roles, ok := env.(map[string]any)["roles"].(map[string]any); ok {
					roles[fmt.Sprintf("role-%d", i)] = []any{"accounts:read"}
				}
			}
		}
		return
	}
	if n <= 1 {
		return
	}
	own, _ := pdp["routes"].([]any)
	pdp["routes"] = append(benchRoutes(n-1), own...)
}

// A policy version's route table is compiled when the version is activated,
// once: its decisions find the compiled table and compile nothing, and the
// next version (new data) compiles its own.
func TestRouteTableIsCompiledOncePerVersion(t *testing.T) {
	set := shippedPolicy(t)
	withRoutes(t, set, 100)
	e := NewEngine(nil)
	ctx := context.Background()
	before := builtins.RouteCompiles()
	if err := e.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	if got := builtins.RouteCompiles() - before; got != 1 {
		t.Fatalf("activation compiled %d route tables, want 1", got)
	}
	now := time.Now()
	input := benchInput(now)
	for range 3 {
		res, _, err := e.Eval(ctx, input, now)
		if err != nil || !res.Allow {
			t.Fatalf("eval: %v %+v", err, res)
		}
	}
	if got := builtins.RouteCompiles() - before; got != 1 {
		t.Fatalf("after 3 decisions %d route tables were compiled, want 1", got)
	}
	next := shippedPolicy(t)
	withRoutes(t, next, 101)
	if err := e.Activate(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := builtins.RouteCompiles() - before; got != 2 {
		t.Fatalf("two versions compiled %d route tables, want 2", got)
	}
}

// BenchmarkActivateDataEdit measures activating the shipped policy after an
// edit of its data alone: its modules compiled for the active version are
// used again.
func BenchmarkActivateDataEdit(b *testing.B) {
	set := shippedPolicy(b)
	e := NewEngine(nil)
	if err := e.Activate(context.Background(), set); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		next := *set
		next.Data = maps.Clone(set.Data)
		next.Data["edit"] = i
		if err := e.Activate(context.Background(), &next); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReloadDataEdit measures what a watched directory does after an
// edit of the shipped policy's data alone: reading the directory (its
// modules parsed once, see parseCache) and activating the new version.
func BenchmarkReloadDataEdit(b *testing.B) {
	shippedPolicy(b) // the store the built-ins read
	dir := b.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../rego")); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		b.Fatal(err)
	}
	var cache parseCache
	e := NewEngine(nil)
	load := func(i int) {
		edited := bytes.Replace(raw, []byte(`{`), fmt.Appendf(nil, `{"edit": %d, `, i), 1)
		if err := os.WriteFile(filepath.Join(dir, "data.json"), edited, 0o600); err != nil {
			b.Fatal(err)
		}
		set, err := loadDir(dir, Limits{}, &cache)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Activate(context.Background(), set); err != nil {
			b.Fatal(err)
		}
	}
	load(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		load(i)
	}
}

// BenchmarkActivate measures activating the shipped policy with n routes:
// compiling, folding, the data checks (config_errors) and the route table.
func BenchmarkActivate(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			set := shippedPolicy(b)
			withRoutes(b, set, n)
			b.ReportAllocs()
			for b.Loop() {
				if err := NewEngine(nil).Activate(context.Background(), set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
