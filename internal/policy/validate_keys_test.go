package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// TestConfigErrorsKnowEverySettingTheModulesRead: every key of data.pdp a
// shipped module reads (data.pdp.<key>, config.pdp.<key>, or the first
// element of a path given to config.get_string, get_strings, duration_ns or
// get_int) is one data.tokenguard.config_errors knows: a setting added
// without validation fails here.
func TestConfigErrorsKnowEverySettingTheModulesRead(t *testing.T) {
	set, err := LoadDir("../../rego", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query("data.tokenguard.pdp_keys"), rego.Store(inmem.New())}
	for _, m := range set.Modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	rs, err := rego.New(opts...).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("data.tokenguard.pdp_keys: %v %v", rs, err)
	}
	known := map[string]bool{}
	for _, k := range rs[0].Expressions[0].Value.([]any) {
		known[k.(string)] = true
	}
	read := map[string]string{} // key -> where
	readers := map[string]bool{"get_string": true, "get_strings": true, "duration_ns": true, "get_int": true}
	pathArg := func(name ast.Ref, args []*ast.Term, where string) {
		last, ok := name[len(name)-1].Value.(ast.String)
		if !ok || !readers[string(last)] || len(args) == 0 {
			return
		}
		if arr, ok := args[0].Value.(*ast.Array); ok && arr.Len() > 0 {
			if s, ok := arr.Elem(0).Value.(ast.String); ok {
				read[string(s)] = where
			}
		}
	}
	for _, m := range set.Modules {
		where := moduleName(m)
		ast.WalkRefs(m, func(r ast.Ref) bool {
			for _, prefix := range []ast.Ref{ast.MustParseRef("data.pdp"), ast.MustParseRef("config.pdp")} {
				if r.HasPrefix(prefix) && len(r) > len(prefix) {
					if s, ok := r[len(prefix)].Value.(ast.String); ok {
						read[string(s)] = where
					}
				}
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if call, ok := t.Value.(ast.Call); ok {
				if name, ok := call[0].Value.(ast.Ref); ok {
					pathArg(name, call[1:], where)
				}
			}
			return false
		})
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() {
				pathArg(e.Operator(), e.Operands(), where)
			}
			return false
		})
	}
	if len(read) < 10 {
		t.Fatalf("found only %v: the walk misses readers", read)
	}
	for key, where := range read {
		if !known[key] {
			t.Errorf("data.pdp.%s is read (%s) but not validated by data.tokenguard.config_errors", key, where)
		}
	}
}
