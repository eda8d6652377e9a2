package policy

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// foldCase is a policy, its data and the rules (package-relative names in
// package p) that folding must and must not replace.
type foldCase struct {
	name     string
	modules  []string
	data     string
	folded   []string // replaced by their value
	kept     []string // still evaluated on every request
	skipped  string   // Skipped must contain this; "" when folding ran
	inputs   []string // compared folded and unfolded, for the query data.p
	errorsOn []string // inputs for which both must fail
}

func TestFold(t *testing.T) {
	tests := []foldCase{
		{
			name:    "a rule reading only data is replaced by its value",
			modules: []string{"package p\nlimit := data.cfg.max * 2\nover if input.n > limit"},
			data:    `{"cfg": {"max": 10}}`,
			folded:  []string{"limit"}, kept: []string{"over"},
			inputs: []string{`{"n": 5}`, `{"n": 50}`, `{}`},
		},
		{
			name: "a rule depending on input, directly or through rules and functions, is evaluated per request",
			modules: []string{`package p
a := input.a
b := a + 1
f(k) := input[k]
c := f("a")
d := count(data.q)
`, "package q\nx := 1\ny := input.y"},
			data:   `{}`,
			kept:   []string{"a", "b", "c", "d"},
			inputs: []string{`{"a": 1, "y": 2}`, `{}`},
		},
		{
			name:    "a rule calling a nondeterministic built-in is evaluated per request",
			modules: []string{"package p\nt := time.now_ns() > 0\nr := pdp_free if true\npdp_free := 1"},
			data:    `{}`,
			folded:  []string{"r"}, kept: []string{"t"},
			inputs: []string{`{}`},
		},
		{
			name: "annotations read with rego.metadata are constants",
			modules: []string{`package p
# METADATA
# title: chain
c := [x.path | some x in rego.metadata.chain()]
d := c
# METADATA
# title: rule
r := rego.metadata.rule().title
`},
			data:   `{}`,
			folded: []string{"c", "d", "r"},
			inputs: []string{`{}`},
		},
		{
			name:    "a rule whose evaluation fails keeps failing on each request",
			modules: []string{"package p\nbad := data.cfg.n / 0\nok := data.cfg.n"},
			data:    `{"cfg": {"n": 3}}`,
			folded:  []string{"ok"}, kept: []string{"bad"},
			errorsOn: []string{`{}`},
		},
		{
			name:    "an undefined rule stays undefined and its default applies",
			modules: []string{"package p\nu := 1 if data.cfg.missing\ndefault v := 7\nv := 1 if data.cfg.missing\nw := 2 if not u"},
			data:    `{"cfg": {}}`,
			folded:  []string{"u", "v", "w"},
			inputs:  []string{`{}`},
		},
		{
			name:    "a set of values keeps its members",
			modules: []string{"package p\ns contains x if { some x in data.cfg.list; x != \"b\" }\nhas if input.v in s\nn := count(s)\ne contains x if { some x in data.cfg.none }"},
			data:    `{"cfg": {"list": ["a", "b", "c"]}}`,
			folded:  []string{"s", "n", "e"}, kept: []string{"has"},
			inputs: []string{`{"v": "a"}`, `{"v": "b"}`, `{}`},
		},
		{
			name:    "else branches are folded with their rule",
			modules: []string{"package p\ne := 1 if data.cfg.flag else := 2\ng := 1 if data.cfg.flag else := input.x"},
			data:    `{"cfg": {"flag": false}}`,
			folded:  []string{"e"}, kept: []string{"g"},
			inputs: []string{`{"x": 3}`},
		},
		{
			name:    "a dynamic reference to rules that read input is evaluated per request",
			modules: []string{"package p\nall := [v | v := data.lib[_].v]\nnames := {k | some k; data.lib[k]}", "package lib.a\nv := 1", "package lib.b\nv := input.b"},
			data:    `{}`,
			kept:    []string{"all", "names"},
			inputs:  []string{`{"b": 2}`, `{}`},
		},
		{
			name:    "nested rule names and functions are left alone",
			modules: []string{"package p\na.b := data.cfg.max\nf(x) := x + data.cfg.max"},
			data:    `{"cfg": {"max": 1}}`,
			kept:    []string{"a", "f"},
			inputs:  []string{`{}`},
		},
		{
			name:    "nothing is folded when a with replaces data",
			modules: []string{"package p\nlimit := data.cfg.max\nlow := y if { y := limit with data.cfg.max as 1 }"},
			data:    `{"cfg": {"max": 10}}`,
			kept:    []string{"limit", "low"},
			skipped: "with data.cfg.max",
			inputs:  []string{`{}`},
		},
		{
			name:    "a with on input does not stop folding",
			modules: []string{"package p\nlimit := data.cfg.max\nx := input.v\nlow := y if { y := x with input.v as 1 }"},
			data:    `{"cfg": {"max": 10}}`,
			folded:  []string{"limit"}, kept: []string{"x", "low"},
			inputs: []string{`{"v": 3}`},
		},
		{
			name:    "nothing is folded when the policy data has the folded document",
			modules: []string{"package p\nlimit := data.cfg.max"},
			data:    `{"cfg": {"max": 10}, "` + foldRoot + `": {}}`,
			kept:    []string{"limit"},
			skipped: "is policy data",
			inputs:  []string{`{}`},
		},
		{
			name:    "a rule the query does not need is left alone",
			modules: []string{"package p\nlimit := data.cfg.max", "package other\nunused := count(data.cfg.list)"},
			data:    `{"cfg": {"max": 10, "list": [1, 2]}}`,
			folded:  []string{"limit"}, kept: []string{"unused"},
			inputs: []string{`{}`},
		},
		{
			name: "a rule whose document another package's rule adds to is evaluated per request",
			modules: []string{
				"package a.b\ndefault c := false",
				"package a\nb.c := true if input.ok",
				"package p\nv := data.a.b.c",
			},
			data:   `{}`,
			kept:   []string{"c", "v"},
			inputs: []string{`{"ok": true}`, `{}`},
		},
		{
			name:    "a certificate chain checked against the clock is evaluated per request",
			modules: []string{"package p\nchain := crypto.x509.parse_and_verify_certificates(data.cfg.chain)\nlimit := data.cfg.max"},
			data:    `{"cfg": {"chain": "not a certificate", "max": 1}}`,
			folded:  []string{"limit"}, kept: []string{"chain"},
			inputs: []string{`{}`},
		},
		{
			name:    "a policy that does not compile is returned as it is",
			modules: []string{"package p\nx := y"},
			data:    `{}`,
			kept:    []string{"x"},
			skipped: "do not compile",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			var modules []*ast.Module
			for i, src := range tt.modules {
				m, err := ast.ParseModuleWithOpts(string(rune('a'+i))+".rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
				if err != nil {
					t.Fatal(err)
				}
				modules = append(modules, m)
			}
			var data map[string]any
			if err := util.UnmarshalJSON([]byte(tt.data), &data); err != nil {
				t.Fatal(err)
			}
			store := inmem.NewFromObjectWithOpts(data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
			before := make([]string, len(modules))
			for i, m := range modules {
				before[i] = m.String()
			}
			f, err := fold(ctx, "data.p", modules, data, store)
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range modules {
				if m.String() != before[i] {
					t.Errorf("fold changed its input module %d", i)
				}
			}
			if tt.skipped == "" && f.Skipped != "" || !strings.Contains(f.Skipped, tt.skipped) {
				t.Errorf("Skipped = %q, want %q", f.Skipped, tt.skipped)
			}
			if f.Rules != len(tt.folded) {
				t.Errorf("Rules = %d, want %d", f.Rules, len(tt.folded))
			}
			for _, name := range tt.folded {
				if !isValueRule(f.Modules, name) {
					t.Errorf("%s was not replaced by its value", name)
				}
			}
			for _, name := range tt.kept {
				if isValueRule(f.Modules, name) {
					t.Errorf("%s was replaced by its value", name)
				}
			}
			eval := func(mods []*ast.Module, input string) (string, error) {
				opts := []func(*rego.Rego){rego.Query("data.p"), rego.Store(store), rego.StrictBuiltinErrors(true),
					rego.ParsedInput(ast.MustParseTerm(input).Value)}
				for _, m := range mods {
					opts = append(opts, rego.ParsedModule(m))
				}
				rs, err := rego.New(opts...).Eval(ctx)
				if err != nil {
					return "", err
				}
				return string(util.MustMarshalJSON(rs[0].Expressions[0].Value)), nil
			}
			for _, in := range tt.inputs {
				want, err := eval(modules, in)
				if err != nil {
					t.Fatalf("unfolded, input %s: %v", in, err)
				}
				got, err := eval(f.Modules, in)
				if err != nil {
					t.Fatalf("folded, input %s: %v", in, err)
				}
				if got != want {
					t.Errorf("input %s: folded %s, unfolded %s", in, got, want)
				}
			}
			for _, in := range tt.errorsOn {
				if _, err := eval(modules, in); err == nil {
					t.Fatalf("unfolded, input %s: no error", in)
				}
				if _, err := eval(f.Modules, in); err == nil {
					t.Errorf("folded, input %s: no error, unfolded fails", in)
				}
			}
		})
	}
}

// isValueRule reports whether the rules called name (a name used in one
// package only) are the one rule folding writes: its value read from the
// folded document.
func isValueRule(modules []*ast.Module, name string) bool {
	var rules []*ast.Rule
	for _, m := range modules {
		for _, r := range m.Rules {
			if r.Head.Ref()[0].Value.Compare(ast.Var(name)) == 0 {
				rules = append(rules, r)
			}
		}
	}
	if len(rules) != 1 || rules[0].Else != nil || len(rules[0].Head.Args) > 0 || rules[0].Default {
		return false
	}
	r := rules[0]
	read, ok := r.Head.Value.Value.(ast.Ref)
	return ok && read.HasPrefix(ast.MustParseRef("data."+foldRoot)) && len(r.Body) == 1 && r.Body[0].String() == "true"
}

// Folding that takes too long leaves the version as written: it activates
// and decides as if nothing had been folded.
func TestSlowFoldingServesThePolicyAsWritten(t *testing.T) {
	defer func(d time.Duration) { foldTimeout = d }(foldTimeout)
	foldTimeout = time.Millisecond
	e := activate(t, writePolicy(t, `many := count([x | some x in numbers.range(1, 2000000)])

decision := {"allow": many > 0, "status": 200, "reasons": []}`))
	if info, _ := e.Active(); info.FoldedRules != 0 {
		t.Errorf("%d rules folded, want none", info.FoldedRules)
	}
	res, _, err := e.Eval(context.Background(), ast.NewObject(), time.Now())
	if err != nil || !res.Allow {
		t.Fatalf("Eval = %+v, %v", res, err)
	}
}

// TestDataEditReusesTheCompiledModules: a version whose modules are the
// active version's, file and line alike, is folded and validated with the
// modules compiled for the active one, against its own data; any other
// change to the modules compiles them again.
func TestDataEditReusesTheCompiledModules(t *testing.T) {
	const own = `package tokenguard

config_errors contains {"path": "acme.tenants", "message": "must be an object"} if {
	not is_object(data.acme.tenants)
}
`
	first := map[string]string{
		"main.rego": markerModule("m1"),
		"own.rego":  own,
		"data.json": `{"marker": "d1", "acme": {"tenants": {}}}`,
	}
	edit := func(f func(files map[string]string)) map[string]string {
		files := maps.Clone(first)
		f(files)
		return files
	}
	tests := []struct {
		name    string
		files   map[string]string
		reused  bool
		refused string // part of the refusal; "" for activated
		message string // data.marker of the decision then
	}{
		{name: "data edited: reused, the new data decides", reused: true, message: "d2",
			files: edit(func(f map[string]string) { f["data.json"] = `{"marker": "d2", "acme": {"tenants": {}}}` })},
		{name: "data edited with a config error: refused, the active version serves", refused: "acme.tenants: must be an object", message: "d1",
			files: edit(func(f map[string]string) { f["data.json"] = `{"marker": "d2", "acme": {"tenants": []}}` })},
		{name: "a module edited: compiled again", message: "d1",
			files: edit(func(f map[string]string) { f["main.rego"] = markerModule("m2") })},
		{name: "a rule moved down a line: compiled again", message: "d1",
			files: edit(func(f map[string]string) { f["own.rego"] = strings.Replace(own, "\n\n", "\n\n\n", 1) })},
		{name: "a line inserted within a rule: compiled again", message: "d1",
			files: edit(func(f map[string]string) { f["own.rego"] = strings.Replace(own, "{\n\tnot", "{\n\n\tnot", 1) })},
		{name: "a module in a file renamed: compiled again", message: "d1",
			files: edit(func(f map[string]string) { f["own2.rego"] = own; delete(f, "own.rego") })},
	}
	// Both versions are read from the same directory, as a watched one is.
	load := func(t *testing.T, dir string, files map[string]string) *Set {
		old, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range old {
			if _, keep := files[filepath.Base(p)]; !keep {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, content := range files {
			writeFile(t, dir, name, content)
		}
		set, err := LoadDir(dir, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, dir := context.Background(), t.TempDir()
			e := NewEngine(nil)
			if err := e.Activate(ctx, load(t, dir, first)); err != nil {
				t.Fatal(err)
			}
			before := e.compiled.Load()
			if before == nil || before.c == nil {
				t.Fatal("the active version's compiled modules are not kept")
			}
			err := e.Activate(ctx, load(t, dir, tt.files))
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Fatalf("err = %v, want a refusal naming %q", err, tt.refused)
			}
			after := e.compiled.Load()
			if reused := after.c == before.c; reused != tt.reused && tt.refused == "" {
				t.Errorf("compiled modules reused = %v, want %v", reused, tt.reused)
			}
			if tt.refused != "" && after != before {
				t.Error("a refused version replaced the active version's compiled modules")
			}
			if _, message, _, err := decide(e); err != nil || message != tt.message {
				t.Errorf("decision message = %q (%v), want %q", message, err, tt.message)
			}
		})
	}
}
