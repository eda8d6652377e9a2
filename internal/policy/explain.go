package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// ExplainQuery is what an explained decision asks for besides Query: the
// shipped main.rego lists there, per guardrail that ran, its outcome, mode
// and what it compared (each lib module's `explain`).
const ExplainQuery = "data.tokenguard.main.explanation"

// Explanation is one guardrail that ran for a decision: a reason it found
// (outcome "deny", or "warn" in monitor mode), or "pass" when it found none.
type Explanation struct {
	Guardrail string `json:"guardrail"`
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	Mode      string `json:"mode"`
	Outcome   string `json:"outcome"`
	// Rule is where the rule that found the reason is ("file:line"); for
	// a pass, where the guardrail says what it compared.
	Rule string `json:"rule"`
	// Values are what the guardrail compared (its `explain` rule).
	Values map[string]any `json:"values"`
}

// Outcomes of an Explanation.
const (
	OutcomeDeny = "deny"
	OutcomeWarn = "warn"
	OutcomePass = "pass"
)

// maxExplanations bounds the entries read from a policy's explanation.
const maxExplanations = 256

// explainer is the explanation query of one policy version, compiled on
// first use: explaining is rare, and the decision query is prepared (and
// folded) on its own, so that explaining costs /v1/decide nothing.
type explainer struct {
	once  sync.Once
	query rego.PreparedEvalQuery
	rules ruleIndex
	err   error
}

func (x *explainer) prepare(ctx context.Context, set *Set) error {
	x.once.Do(func() {
		store := inmem.NewFromObjectWithOpts(set.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
		opts := []func(*rego.Rego){
			rego.Query(ExplainQuery),
			rego.Store(store),
			rego.StrictBuiltinErrors(true),
			rego.SetRegoVersion(ast.RegoV1),
		}
		for _, m := range set.Modules {
			opts = append(opts, rego.ParsedModule(m))
		}
		// Not the request's context: a canceled first explain must not
		// leave the version without an explainer.
		x.query, x.err = rego.New(opts...).PrepareForEval(context.WithoutCancel(ctx))
		x.rules = indexRules(set)
	})
	return x.err
}

// Explain evaluates the decision exactly as Eval does, and then the
// explanation of the same input with the same version. It writes nothing:
// the pdp.* built-ins only read. A policy that defines no explanation
// gives none (an empty list), not an error.
func (e *Engine) Explain(ctx context.Context, input ast.Value, now time.Time) (Result, string, []Explanation, error) {
	v := e.active.Load()
	if v == nil {
		return Result{}, "", nil, ErrNoPolicy
	}
	res, err := v.eval(ctx, input, now, builtins.NDBCache{})
	if err != nil {
		return Result{}, v.revision, nil, err
	}
	if err := v.explain.prepare(ctx, v.set); err != nil {
		return res, v.revision, nil, fmt.Errorf("prepare %s: %w", ExplainQuery, err)
	}
	rs, err := v.explain.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(now))
	if err != nil {
		return res, v.revision, nil, fmt.Errorf("evaluate %s: %w", ExplainQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return res, v.revision, []Explanation{}, nil
	}
	xs, err := explanationsOf(rs[0].Expressions[0].Value, v.explain.rules)
	if err != nil {
		return res, v.revision, nil, fmt.Errorf("evaluate %s: %w", ExplainQuery, err)
	}
	return res, v.revision, xs, nil
}

// explanationsOf reads the explanation list strictly: every entry an
// object with string guardrail, code, mode and outcome and object values.
func explanationsOf(v any, rules ruleIndex) ([]Explanation, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var xs []Explanation
	if err := json.Unmarshal(raw, &xs); err != nil {
		return nil, fmt.Errorf("explanation is not a list of entries: %w", err)
	}
	if len(xs) > maxExplanations {
		return nil, fmt.Errorf("explanation has %d entries, more than %d", len(xs), maxExplanations)
	}
	for i := range xs {
		x := &xs[i]
		switch x.Outcome {
		case OutcomeDeny, OutcomeWarn, OutcomePass:
		default:
			return nil, fmt.Errorf("explanation[%d]: outcome %q is not deny, warn or pass", i, x.Outcome)
		}
		if x.Guardrail == "" {
			return nil, fmt.Errorf("explanation[%d]: no guardrail", i)
		}
		if x.Values == nil {
			x.Values = map[string]any{}
		}
		x.Rule = rules.find(x.Guardrail, x.Code)
	}
	return xs, nil
}

// ruleIndex finds, by guardrail and reason code, the rule that produces
// the reason: worked out from the modules' source, once per version.
type ruleIndex map[string]*guardrailRules

type guardrailRules struct {
	// byCode: the first rule `reasons` whose text holds the code as a
	// string; other: the first other rule that does (a helper rule the
	// reason is built in).
	byCode, other map[string]string
	// reasons: the first rule `reasons`; dynamic: the first whose code is
	// not a constant (reason.new(code, ...), or a reason built elsewhere);
	// explain: the first rule explain.
	reasons, dynamic, explain string
}

// packageOf names the package a guardrail of an explanation is in: the lib
// module of that name, the grant module or token_endpoint, and "request"
// (path parameters, main.rego) the route module's.
func packageOf(guardrail string) string {
	switch {
	case guardrail == "request":
		return "tokenguard.lib.route"
	case guardrail == "token_endpoint", strings.HasPrefix(guardrail, "grants."):
		return "tokenguard." + guardrail
	}
	return "tokenguard.lib." + guardrail
}

func indexRules(set *Set) ruleIndex {
	root := strings.TrimPrefix(set.Source, "dir:")
	idx := ruleIndex{}
	for _, m := range set.Modules {
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		g := idx[pkg]
		if g == nil {
			g = &guardrailRules{byCode: map[string]string{}, other: map[string]string{}}
			idx[pkg] = g
		}
		for _, r := range m.Rules {
			loc := location(r.Location, root)
			name := r.Head.Ref().String()
			switch {
			case name == "reasons" || name == "parameter_reasons":
				if g.reasons == "" {
					g.reasons = loc
				}
				if g.dynamic == "" && firstString(r.Head.Key) == "" {
					g.dynamic = loc
				}
			case name == "explain" || strings.HasPrefix(name, "explain."):
				if g.explain == "" {
					g.explain = loc
				}
			}
			if name == "modes" {
				continue // a code's mode name says nothing of where it is found
			}
			into := g.other
			if name == "reasons" || name == "parameter_reasons" {
				into = g.byCode
			}
			ast.WalkTerms(r, func(t *ast.Term) bool {
				if _, ok := t.Value.(ast.Ref); ok {
					return true // the strings of a path name no code
				}
				if s, ok := t.Value.(ast.String); ok {
					if _, seen := into[string(s)]; !seen {
						into[string(s)] = loc
					}
				}
				return false
			})
		}
	}
	return idx
}

func location(loc *ast.Location, root string) string {
	if loc == nil {
		return ""
	}
	file := loc.File
	if root != "" {
		file = strings.TrimPrefix(strings.TrimPrefix(file, root), "/")
	}
	return file + ":" + strconv.Itoa(loc.Row)
}

// find names the rule behind a guardrail's reason code ("" for a pass).
func (idx ruleIndex) find(guardrail, code string) string {
	g := idx[packageOf(guardrail)]
	if g == nil {
		return ""
	}
	if code == "" {
		if g.explain != "" {
			return g.explain
		}
		return g.reasons
	}
	if loc, ok := g.byCode[code]; ok {
		return loc
	}
	if g.dynamic != "" {
		return g.dynamic
	}
	if loc, ok := g.other[code]; ok {
		return loc
	}
	return g.reasons
}

// firstString is the first string constant in t outside of refs: the code
// of reason.new("code", ...); "" when the code is not a constant.
func firstString(t *ast.Term) string {
	var out string
	if t == nil {
		return ""
	}
	ast.WalkTerms(t, func(t *ast.Term) bool {
		if out != "" {
			return true
		}
		if _, ok := t.Value.(ast.Ref); ok {
			return true
		}
		if s, ok := t.Value.(ast.String); ok {
			out = string(s)
			return true
		}
		return false
	})
	return out
}
