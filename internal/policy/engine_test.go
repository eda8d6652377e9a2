package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// writePolicy writes a one-module policy whose decision is the given Rego
// expression, into a fresh directory.
func writePolicy(t *testing.T, decision string) string {
	t.Helper()
	dir := t.TempDir()
	mod := "package tokenguard.main\n\n" + decision + "\n"
	if err := os.WriteFile(filepath.Join(dir, "main.rego"), []byte(mod), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func activate(t *testing.T, dir string) *Engine {
	t.Helper()
	set, err := LoadDir(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(nil)
	if err := e.Activate(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEvalRefusesMalformedDecisions(t *testing.T) {
	tests := []struct {
		name, rego, want string
	}{
		{"fail/undefined decision", `x := 1`, "undefined"},
		{"fail/decision not an object", `decision := true`, "not an object"},
		{"fail/allow is a string", `decision := {"allow": "true", "status": 200, "reasons": []}`, "allow is not a boolean"},
		{"fail/allow missing", `decision := {"status": 200, "reasons": []}`, "allow is not a boolean"},
		{"fail/allow with reasons", `decision := {"allow": true, "status": 200, "reasons": [{"code": "x"}]}`, "allows with deny reasons"},
		{"fail/allow with a deny status", `decision := {"allow": true, "status": 401, "reasons": []}`, "allows with status 401"},
		{"fail/deny without reason", `decision := {"allow": false, "status": 401, "reasons": []}`, "without a reason"},
		{"fail/deny with status 200", `decision := {"allow": false, "status": 200, "reasons": [{"code": "x"}]}`, "denies with status 200"},
		{"fail/reason without code", `decision := {"allow": false, "status": 401, "reasons": [{"message": "x"}]}`, "without a code"},
		{"fail/status not a number", `decision := {"allow": false, "status": "401", "reasons": [{"code": "x"}]}`, "status is not an integer"},
		{"fail/header value not a string", `decision := {"allow": false, "status": 401, "reasons": [{"code": "x"}], "headers": {"www-authenticate": 1}}`, "headers"},
		{"fail/conflicting rule values", "decision := {\"allow\": true, \"status\": 200, \"reasons\": []} if input.a\ndecision := {\"allow\": false} if input.b", "conflict"},
		{"fail/builtin error is strict", `decision := {"allow": true, "status": 200, "reasons": [], "x": to_number("nope")}`, "to_number"},
	}
	input := ast.MustParseTerm(`{"a": true, "b": true}`).Value
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := activate(t, writePolicy(t, tt.rego))
			_, _, err := e.Eval(context.Background(), input, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Eval error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestEvalReadsADecision(t *testing.T) {
	e := activate(t, writePolicy(t, `decision := {
	"allow": false, "status": 403,
	"reasons": {{"code": "b", "message": "second"}, {"code": "a", "message": "first"}},
	"headers": {"WWW-Authenticate": "Bearer error=\"x\"\r\nX-Injected: 1"},
	"upstream_headers": {},
	"grant_type": "client_credentials", "module": "grants.client_credentials",
}`))
	res, rev, err := e.Eval(context.Background(), ast.NewObject(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rev == "" {
		t.Error("no revision")
	}
	if res.Allow || res.Status != 403 || res.GrantType != "client_credentials" || res.Module != "grants.client_credentials" {
		t.Errorf("result = %+v", res)
	}
	if len(res.Reasons) != 2 || res.Reasons[0].Code != "a" || res.Reasons[1].Code != "b" {
		t.Errorf("reasons from a set must come sorted: %+v", res.Reasons)
	}
	if got := res.Headers["www-authenticate"]; got != `Bearer error="x"X-Injected: 1` {
		t.Errorf("header name must be lower-cased and control characters stripped, got %q", got)
	}
}

func TestNoPolicyIsAnError(t *testing.T) {
	e := NewEngine(nil)
	if err := e.Ready(); err == nil {
		t.Error("Ready() = nil without a policy")
	}
	if _, _, err := e.Eval(context.Background(), ast.NewObject(), time.Now()); err != ErrNoPolicy {
		t.Errorf("Eval error = %v, want ErrNoPolicy", err)
	}
}

func TestFailedActivationKeepsThePreviousPolicy(t *testing.T) {
	e := activate(t, writePolicy(t, `decision := {"allow": false, "status": 401, "reasons": [{"code": "x"}]}`))
	before, _ := e.Active()
	bad := &Set{Modules: []*ast.Module{ast.MustParseModule("package tokenguard.main\n\ndecision := {\"allow\": true, \"status\": 200, \"reasons\": []} if { x }\n")}, Source: "test"}
	if err := e.Activate(context.Background(), bad); err == nil {
		t.Fatal("a module with an unsafe variable compiled")
	}
	after, _ := e.Active()
	if after.Revision != before.Revision {
		t.Errorf("revision changed from %s to %s after a failed activation", before.Revision, after.Revision)
	}
}

func TestLoadDirRevisionFollowsContent(t *testing.T) {
	dir := writePolicy(t, `decision := 1`)
	a, err := LoadDir(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadDir(dir, Limits{})
	if a.Revision != b.Revision {
		t.Error("same content, different revisions")
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"pdp": {"x": 1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := LoadDir(dir, Limits{})
	if c.Revision == a.Revision {
		t.Error("a data change did not change the revision")
	}
	if err := os.WriteFile(filepath.Join(dir, "main_test.rego"), []byte("package tokenguard.main_test\n\ntest_x if true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := LoadDir(dir, Limits{})
	if d.Revision != c.Revision || len(d.Modules) != 1 {
		t.Error("a test module is served or changes the revision")
	}
}

func TestEvalReadsWarningsAndEffects(t *testing.T) {
	e := activate(t, writePolicy(t, `decision := {
	"allow": false, "status": 400, "reasons": [{"code": "refresh_token_reused", "message": "m"}],
	"warnings": [{"code": "lifetime_exceeded", "message": "w"}],
	"effects": [{"revoke": {"kind": "session", "iss": "https://as.example.com", "value": "s1", "reason": "refresh_token_reused"}}],
}`))
	res, _, err := e.Eval(context.Background(), ast.NewObject(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || res.Warnings[0].Code != "lifetime_exceeded" {
		t.Errorf("warnings = %+v", res.Warnings)
	}
	if len(res.Effects) != 1 || *res.Effects[0].Revoke != (RevokeEffect{Kind: "session", Issuer: "https://as.example.com", Value: "s1", Reason: "refresh_token_reused"}) {
		t.Errorf("effects = %+v", res.Effects)
	}
	for name, bad := range map[string]string{
		"fail/unknown effect":       `[{"notify": {}}]`,
		"fail/revoke without value": `[{"revoke": {"kind": "session", "iss": "x"}}]`,
		"fail/effects not an array": `"revoke"`,
		"fail/two effects in one":   `[{"revoke": {"kind": "session", "iss": "x", "value": "y"}, "other": 1}]`,
	} {
		t.Run(name, func(t *testing.T) {
			e := activate(t, writePolicy(t, `decision := {"allow": false, "status": 401, "reasons": [{"code": "x"}], "effects": `+bad+`}`))
			if _, _, err := e.Eval(context.Background(), ast.NewObject(), time.Now()); err == nil {
				t.Error("a malformed effect was accepted")
			}
		})
	}
}

func TestSettingsComeFromPolicyData(t *testing.T) {
	dir := writePolicy(t, `decision := 1`)
	data := `{"pdp": {"token_endpoint": {"url": "HTTPS://AS.example.com:443/token?x=1", "refresh_max_age": "48h"}}}`
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	e := activate(t, dir)
	if s := e.Settings(); s.TokenEndpoint != "https://as.example.com/token" || s.RefreshMaxAge != 48*time.Hour {
		t.Errorf("settings = %+v", s)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(`{"pdp": {"token_endpoint": {"url": 7}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir(dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Activate(context.Background(), set); err == nil {
		t.Error("a policy with a malformed token_endpoint.url was activated")
	}
}
