package policy

import (
	"context"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// lineOf is "file:line" of the first line of the shipped module file that
// starts with prefix.
func lineOf(t *testing.T, file, prefix string) string {
	t.Helper()
	raw, err := os.ReadFile("../../rego/" + file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, prefix) {
			return file + ":" + strconv.Itoa(i+1)
		}
	}
	t.Fatalf("%s has no line starting with %q", file, prefix)
	return ""
}

func TestExplainNamesEachGuardrailThatRan(t *testing.T) {
	set := shippedPolicy(t)
	e := NewEngine(nil)
	if err := e.Activate(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ctx := context.Background()

	tests := []struct {
		name  string
		input ast.Value
		// want: the entry of the lifetime guardrail
		want Explanation
	}{
		{
			name:  "ok/a token within its limits passes, at the rule that says what it compared",
			input: benchInput(now),
			want: Explanation{Guardrail: "lifetime", Mode: "enforce", Outcome: OutcomePass,
				Rule: lineOf(t, "lib/lifetime.rego", "explain"), Values: map[string]any{
					"lifetime_s": 300.0, "max_lifetime_s": 3600.0, "max_lifetime_from": "data.pdp.lifetimes.default.max_lifetime",
					"age_s": 0.0, "max_age_s": 3600.0, "max_age_from": "data.pdp.lifetimes.default.max_age",
				}},
		},
		{
			name:  "fail/an over-long token is denied by lifetime_exceeded, with both values",
			input: overLong(t, now),
			want: Explanation{Guardrail: "lifetime", Code: "lifetime_exceeded", Mode: "enforce", Outcome: OutcomeDeny,
				Message: "the token lives 7200s, more than the 3600s allowed",
				Rule:    lineOf(t, "lib/lifetime.rego", `reasons contains reason.new("lifetime_exceeded"`), Values: map[string]any{
					"lifetime_s": 7200.0, "max_lifetime_s": 3600.0, "max_lifetime_from": "data.pdp.lifetimes.default.max_lifetime",
					"age_s": 0.0, "max_age_s": 3600.0, "max_age_from": "data.pdp.lifetimes.default.max_age",
				}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, rev, xs, err := e.Explain(ctx, tt.input, now)
			if err != nil {
				t.Fatal(err)
			}
			decided, decidedRev, err := e.Eval(ctx, tt.input, now)
			if err != nil {
				t.Fatal(err)
			}
			res.Nondeterministic, decided.Nondeterministic = nil, nil
			if !reflect.DeepEqual(res, decided) || rev != decidedRev {
				t.Errorf("explained decision %+v differs from the decision %+v", res, decided)
			}
			var got []Explanation
			seen := map[string]bool{}
			for _, x := range xs {
				if x.Rule == "" || !strings.Contains(x.Rule, ".rego:") {
					t.Errorf("%s %s: rule %q is not file:line", x.Guardrail, x.Code, x.Rule)
				}
				seen[x.Guardrail] = true
				if x.Guardrail == "lifetime" {
					got = append(got, x)
				}
			}
			for _, g := range []string{"token", "grant", "sender", "revocation", "lifetime", "route", "scope"} {
				if !seen[g] {
					t.Errorf("guardrail %s ran but is not explained", g)
				}
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("lifetime explained as\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// overLong is benchInput with a token that lives two hours.
func overLong(t *testing.T, now time.Time) ast.Value {
	t.Helper()
	in := benchInput(now).(ast.Object)
	claims, err := in.Find(ast.MustParseRef("x.token.claims")[1:])
	if err != nil {
		t.Fatal(err)
	}
	claims.(ast.Object).Insert(ast.StringTerm("exp"), ast.IntNumberTerm(int(now.Add(2*time.Hour).Unix())))
	return in
}

func TestExplainOfAPolicyWithoutExplanationIsEmpty(t *testing.T) {
	e := activate(t, writePolicy(t, `decision := {"allow": true, "status": 200, "reasons": [], "warnings": [], "headers": {}, "upstream_headers": {}}`))
	res, _, xs, err := e.Explain(context.Background(), ast.NewObject(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Allow || xs == nil || len(xs) != 0 {
		t.Errorf("Explain = %+v, %#v; want the allow and an empty explanation", res, xs)
	}
}

func TestExplainRefusesAMalformedExplanation(t *testing.T) {
	for name, rule := range map[string]string{
		"fail/not a list":          `explanation := "everything passed"`,
		"fail/an unknown outcome":  `explanation := [{"guardrail": "g", "code": "", "mode": "enforce", "outcome": "maybe", "values": {}}]`,
		"fail/an entry unnamed":    `explanation := [{"code": "", "mode": "enforce", "outcome": "pass", "values": {}}]`,
		"fail/values not a object": `explanation := [{"guardrail": "g", "code": "", "mode": "enforce", "outcome": "pass", "values": 3}]`,
	} {
		t.Run(name, func(t *testing.T) {
			e := activate(t, writePolicy(t, `decision := {"allow": true, "status": 200, "reasons": [], "warnings": [], "headers": {}, "upstream_headers": {}}`+"\n"+rule))
			if _, _, _, err := e.Explain(context.Background(), ast.NewObject(), time.Now()); err == nil {
				t.Error("a malformed explanation was accepted")
			}
		})
	}
}

func TestExplainNamesTheRuleOfEachReason(t *testing.T) {
	set, err := LoadDir("../../rego", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	idx := indexRules(set)
	for _, tt := range []struct{ guardrail, code, file, prefix string }{
		{"lifetime", "lifetime_exceeded", "lib/lifetime.rego", `reasons contains reason.new("lifetime_exceeded"`},
		{"lifetime", "", "lib/lifetime.rego", "explain"},
		{"scope", "scope_insufficient", "lib/scope.rego", `reasons contains object.union(reason.new("scope_insufficient"`},
		{"token", "token_expired", "lib/token.rego", "reasons contains unverified"},
		{"revocation", "token_revoked", "lib/revocation.rego", "reasons contains reason.new(code"},
		{"request", "request_path_invalid", "lib/route.rego", `parameter_reasons contains reason.new("request_path_invalid"`},
	} {
		if got, want := idx.find(tt.guardrail, tt.code), lineOf(t, tt.file, tt.prefix); got != want {
			t.Errorf("%s %q: rule %s, want %s", tt.guardrail, tt.code, got, want)
		}
	}
}
