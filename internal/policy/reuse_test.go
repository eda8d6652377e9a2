package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestReuseOf(t *testing.T) {
	tests := []struct {
		name       string
		modules    []string
		allowed    bool
		why        string
		headers    []string
		allHeaders bool
		context    bool
		now        bool
	}{
		{
			name:    "headers read by name are the only ones that count",
			modules: []string{"package tokenguard.lib.a\nx if input.request.headers[\"User-Agent\"][0] == \"a\"\ny if input.request.headers[\"x-tenant\"]\nz if input.request.method == \"GET\""},
			allowed: true, headers: []string{"user-agent", "x-tenant"},
		},
		{
			name:    "a header read with a variable key makes every header count",
			modules: []string{"package tokenguard.lib.a\nx if { some h; input.request.headers[h] }"},
			allowed: true, allHeaders: true,
		},
		{
			name:    "the request read as a whole makes every header count",
			modules: []string{"package tokenguard.lib.a\nx := input.request"},
			allowed: true, allHeaders: true,
		},
		{
			name:    "the request read with a variable key makes every header count",
			modules: []string{"package tokenguard.lib.a\nf(name) := input.request[name]"},
			allowed: true, allHeaders: true,
		},
		{
			name:    "an import from input counts as reading what it imports",
			modules: []string{"package tokenguard.lib.a\nimport input.request.headers as h\nx if h.foo"},
			allowed: true, allHeaders: true,
		},
		{
			name:    "the input as a whole forbids reuse",
			modules: []string{"package tokenguard.lib.a\nx := input"},
			why:     "reads the input as a whole",
		},
		{
			name:    "input.now without valid_until forbids reuse",
			modules: []string{"package tokenguard.lib.a\nx if input.now > 5"},
			why:     "reads input.now but defines no valid_until", now: true,
		},
		{
			name:    "input.now with valid_until in a lib module allows reuse",
			modules: []string{"package tokenguard.lib.a\nx if input.now > 5\nvalid_until := 6 if input.now <= 5"},
			allowed: true, now: true,
		},
		{
			name:    "input.now with valid_until in a grant module allows reuse",
			modules: []string{"package tokenguard.grants.g\nx if input.now > 5\nvalid_until := 6"},
			allowed: true, now: true,
		},
		{
			name:    "valid_until where main.rego does not gather it forbids reuse",
			modules: []string{"package tokenguard.custom\nx if input.now > 5\nvalid_until := 6"},
			why:     "defines no valid_until", now: true,
		},
		{
			name:    "valid_until in another module does not count",
			modules: []string{"package tokenguard.lib.a\nx if input.now > 5", "package tokenguard.lib.b\nvalid_until := 6"},
			why:     "data.tokenguard.lib.a reads input.now", now: true,
		},
		{
			name:    "the context counts when it is read",
			modules: []string{"package tokenguard.lib.a\nx if input.context.tenant == \"t\""},
			allowed: true, context: true,
		},
		{
			name:    "token, dpop and environment do not touch headers",
			modules: []string{"package tokenguard.lib.a\nx if { input.token.claims.sub; input.dpop.valid; input.environment }"},
			allowed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []*ast.Module
			for i, src := range tt.modules {
				m, err := ast.ParseModuleWithOpts(string(rune('a'+i))+".rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
				if err != nil {
					t.Fatal(err)
				}
				mods = append(mods, m)
			}
			r := reuseOf(mods)
			if r.Allowed != tt.allowed || (tt.why != "" && !strings.Contains(r.Why, tt.why)) {
				t.Errorf("Allowed = %v, Why = %q; want %v, %q", r.Allowed, r.Why, tt.allowed, tt.why)
			}
			if !slices.Equal(r.Headers, tt.headers) || r.AllHeaders != tt.allHeaders {
				t.Errorf("Headers = %v, AllHeaders = %v; want %v, %v", r.Headers, r.AllHeaders, tt.headers, tt.allHeaders)
			}
			if r.Context != tt.context || r.Now != tt.now {
				t.Errorf("Context = %v, Now = %v; want %v, %v", r.Context, r.Now, tt.context, tt.now)
			}
		})
	}
}

// The shipped policy must stay reusable, reading only the user-agent
// header by name: a change that makes it read every header would make
// reuse useless behind gateways that add a request id to every request.
func TestShippedPolicyIsReusable(t *testing.T) {
	set, err := LoadDir("../../rego", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r := reuseOf(set.Modules)
	if !r.Allowed || r.AllHeaders || !slices.Equal(r.Headers, []string{"user-agent"}) || !r.Now {
		t.Errorf("reuse of the shipped policy = %+v", r)
	}
}
