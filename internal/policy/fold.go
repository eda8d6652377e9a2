package policy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Folding: rules whose value follows from the policy's modules and data
// alone are evaluated once, when a version is activated, and replaced by
// their value. OPA evaluates every rule a query needs again for each query;
// the route table's validation, settings read with their defaults and the
// lists derived from them are the same for every request of a version (its
// data never changes while it is active). For the shipped policy this saves
// about a tenth of a decision that cannot be reused (BenchmarkEval).
//
// A rule is folded when the decision depends on it, it has no arguments, its
// name is its whole head (`name := ...`, `name contains ...`), no rule of
// another package gives a document above or below it, and neither it (its
// else branches and default included) nor anything it depends on,
// transitively, reads input, calls a nondeterministic built-in (time.now_ns,
// http.send, the pdp.* look-ups...) or one that reads the clock, or prints. A rule whose evaluation fails is not folded, so
// that it fails on each request as before. Nothing is folded in a policy
// with a `with` on anything but input: it could change a folded rule's
// value for one expression.

// folded is what folding did to a policy version.
type folded struct {
	// Modules: the modules to compile and serve.
	Modules []*ast.Module
	// Rules: how many rules were replaced by their value.
	Rules int
	// Skipped: why nothing was folded, empty when folding ran.
	Skipped string
	// Compiler: the given modules compiled, nil when they do not compile
	// or folding failed; other queries against them (config_errors) need
	// not compile them again.
	Compiler *ast.Compiler
}

// foldRoot is the document of the active version's store that holds the
// folded values: a folded rule reads data.__tokenguard_folded__.<key> (absent
// when the rule is undefined). Reading the value from data rather than
// writing it into the rule keeps its type what the compiler knew before
// (any): a constant would let the type checker reject references that are
// merely undefined.
const foldRoot = "__tokenguard_folded__"

// foldTimeout bounds the evaluation of the rules folded for one version:
// beyond it the version is served as written. (A variable for tests.)
var foldTimeout = 10 * time.Second

// fold returns modules with every foldable rule the query depends on replaced
// by its value, which it writes to store (holding data). The given modules are not changed. When
// they do not compile, fold returns them as they are: compiling them again
// reports why.
func fold(ctx context.Context, query string, modules []*ast.Module, data map[string]any, store storage.Store) (folded, error) {
	return foldCompiled(ctx, query, modules, nil, data, store)
}

// foldCompiled is fold with the modules compiled already (by an earlier
// foldCompiled: Compiler), or nil to compile them.
func foldCompiled(ctx context.Context, query string, modules []*ast.Module, c *ast.Compiler, data map[string]any, store storage.Store) (folded, error) {
	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	if c == nil {
		c = compileModules(modules)
	}
	if c.Failed() {
		return folded{Modules: modules, Skipped: "the modules do not compile"}, nil
	}
	if _, taken := data[foldRoot]; taken {
		return folded{Modules: modules, Skipped: "data." + foldRoot + " is policy data", Compiler: c}, nil
	}
	if why := foldBlocker(c); why != "" {
		return folded{Modules: modules, Skipped: why, Compiler: c}, nil
	}
	queryRef, err := ast.ParseRef(query)
	if err != nil {
		return folded{}, fmt.Errorf("fold: query %q: %w", query, err)
	}
	groups := foldable(c, queryRef)
	if len(groups) == 0 {
		return folded{Modules: modules, Compiler: c}, nil
	}
	keys := map[string]string{} // by path
	values := ast.NewObject()   // by key; an undefined rule has none
	for i, path := range slices.Sorted(maps.Keys(groups)) {
		v, ok, err := evalRule(ctx, c, store, path)
		if err != nil {
			return folded{}, err
		}
		if !ok {
			continue // failed: left to fail on each request
		}
		key := fmt.Sprintf("r%d", i)
		keys[path] = key
		if v != nil {
			values.Insert(ast.StringTerm(key), v)
		}
	}
	if len(keys) == 0 {
		return folded{Modules: modules, Compiler: c}, nil
	}
	if err := storage.WriteOne(ctx, store, storage.AddOp, storage.Path{foldRoot}, values); err != nil {
		return folded{}, fmt.Errorf("fold: store values: %w", err)
	}
	out := make([]*ast.Module, len(modules))
	pending := maps.Clone(keys) // a name is replaced once per package
	for i, m := range modules {
		fm, err := foldModule(m, pending)
		if err != nil {
			return folded{}, err
		}
		out[i] = fm
	}
	return folded{Modules: out, Rules: len(keys), Compiler: c}, nil
}

// compileModules compiles modules as fold reads them; the compiler's
// errors say whether they compiled.
func compileModules(modules []*ast.Module) *ast.Compiler {
	byName := make(map[string]*ast.Module, len(modules))
	for i, m := range modules {
		byName[fmt.Sprintf("%d", i)] = m
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	c.Compile(byName)
	return c
}

// compiledModules is the active version's modules as fold compiled them:
// a version with the same modules (an edit of its data alone) is folded and
// validated without compiling them again. (The compiled modules do not
// depend on the data; only their evaluation does.)
type compiledModules struct {
	modules []*ast.Module
	c       *ast.Compiler
}

// of is the compiler when modules are the same as the ones compiled, down
// to each rule's file, line and text (so the lines evaluation errors name
// are the same); else nil.
func (cm *compiledModules) of(modules []*ast.Module) *ast.Compiler {
	if cm == nil || len(cm.modules) != len(modules) {
		return nil
	}
	for i, m := range modules {
		if !sameSource(cm.modules[i], m) {
			return nil
		}
	}
	return cm.c
}

// sameSource: a and b are the same module, read from the same file, with
// each rule written alike on the same line.
func sameSource(a, b *ast.Module) bool {
	if a.Compare(b) != 0 || !samePlace(a.Package.Location, b.Package.Location) {
		return false
	}
	for i := range a.Rules {
		if !samePlace(a.Rules[i].Location, b.Rules[i].Location) {
			return false
		}
	}
	return true
}

func samePlace(a, b *ast.Location) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.File == b.File && a.Row == b.Row && bytes.Equal(a.Text, b.Text)
}

// foldBlocker says why the compiled policy cannot be folded at all, empty
// when it can: a `with` on anything but input. (No rule can read data as a
// whole, which would show it the folded values: the compiler rejects that
// as recursion.)
func foldBlocker(c *ast.Compiler) string {
	var why string
	for _, m := range c.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if !w.Target.Value.(ast.Ref).HasPrefix(ast.InputRootRef) {
					why = fmt.Sprintf("%s: `with %v` can change any rule's value", w.Location, w.Target)
					return true
				}
			}
			return why != ""
		})
		if why != "" {
			return why
		}
	}
	return ""
}

// foldable returns the paths (data.<package>.<name>) of the rules the query
// depends on that can be folded.
func foldable(c *ast.Compiler, query ast.Ref) map[string]bool {
	// tainted: rules that read input, call a nondeterministic or
	// time-dependent built-in or print, or depend on one that does.
	tainted := map[*ast.Rule]bool{}
	var rules []*ast.Rule
	for _, m := range c.Modules {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			rules = append(rules, r)
			if impure(r) {
				tainted[r] = true
			}
			return false
		})
	}
	for changed := true; changed; {
		changed = false
		for _, r := range rules {
			if tainted[r] {
				continue
			}
			for dep := range c.Graph.Dependencies(r) {
				if tainted[dep.(*ast.Rule)] {
					tainted[r], changed = true, true
					break
				}
			}
		}
	}

	// Only what the query needs: another rule would cost the activation
	// and save no request anything.
	needed := map[*ast.Rule]bool{}
	var visit func(r *ast.Rule)
	visit = func(r *ast.Rule) {
		if needed[r] {
			return
		}
		needed[r] = true
		for dep := range c.Graph.Dependencies(r) {
			visit(dep.(*ast.Rule))
		}
	}
	for _, r := range c.GetRulesDynamicWithOpts(query, ast.RulesOptions{}) {
		for ; r != nil; r = r.Else {
			visit(r)
		}
	}

	// A name is folded as a whole: every rule of it (else branches and
	// default included) must be pure, needed and have the name as its whole
	// head, and no rule elsewhere may give a document above or below it
	// (a rule `b.c` of package a adds to data.a.b.c, as a rule `c` of
	// package a.b does).
	names := map[string]bool{}
	blocked := map[string]bool{}
	var paths []ast.Ref
	for _, r := range rules {
		paths = append(paths, fullPath(r))
	}
	for i, r := range rules {
		path := rulePath(r.Module, r)
		// (WalkRules visits else branches as rules of their own.)
		if tainted[r] || !needed[r] || len(r.Head.Args) > 0 || len(r.Head.Ref()) > 1 {
			blocked[path] = true
			continue
		}
		names[path] = true
		for j, q := range paths {
			if j != i && (q.HasPrefix(paths[i]) || paths[i].HasPrefix(q)) && !(q.Equal(paths[i]) && len(rules[j].Head.Ref()) == 1) {
				blocked[path] = true
			}
		}
	}
	for path := range blocked {
		delete(names, path)
	}
	// A name that is one constant already has nothing to gain.
	count := map[string]int{}
	for _, r := range rules {
		count[rulePath(r.Module, r)]++
	}
	for _, r := range rules {
		if p := rulePath(r.Module, r); count[p] == 1 && constant(r) {
			delete(names, p)
		}
	}
	return names
}

// fullPath is the ground part of the document path r gives a value to:
// data.<package>.<head reference>.
func fullPath(r *ast.Rule) ast.Ref {
	head := r.Head.Ref().Copy()
	if v, ok := head[0].Value.(ast.Var); ok {
		head[0] = ast.StringTerm(string(v))
	}
	return r.Module.Package.Path.Concat(head).GroundPrefix()
}

// constant reports whether r is `name := <constant>` with nothing else.
func constant(r *ast.Rule) bool {
	return r.Else == nil && !r.Default && r.Head.Value != nil && ast.IsConstant(r.Head.Value.Value) &&
		len(r.Body) == 1 && r.Body[0].Equal(ast.NewExpr(ast.BooleanTerm(true)))
}

// rulePath is data.<package>.<name> of a rule of m.
func rulePath(m *ast.Module, r *ast.Rule) string {
	name := r.Head.Ref()[0].Value
	if v, ok := name.(ast.Var); ok {
		name = ast.String(v)
	}
	return m.Package.Path.Append(ast.NewTerm(name)).String()
}

// impure reports whether r itself (its head, body and else branches) reads
// input, calls a nondeterministic or time-dependent built-in or prints.
func impure(r *ast.Rule) bool {
	found := false
	ast.WalkTerms(r, func(t *ast.Term) bool {
		if found {
			return true
		}
		if ref, ok := t.Value.(ast.Ref); ok && ref.HasPrefix(ast.InputRootRef) {
			found = true
		}
		return found
	})
	ast.WalkExprs(r, func(e *ast.Expr) bool {
		if found || !e.IsCall() {
			return found
		}
		// (The compiler has replaced rego.metadata.chain() and .rule() by
		// the annotations of the rule they are in: constants.)
		switch name := e.Operator().String(); name {
		case ast.Print.Name, ast.InternalPrint.Name, ast.Trace.Name:
			found = true
		case ast.CryptoX509ParseAndVerifyCertificates.Name, ast.CryptoX509ParseAndVerifyCertificatesWithOptions.Name:
			// Deterministic for OPA, but they check the chain against
			// the clock (unless given a CurrentTime).
			found = true
		default:
			b, ok := ast.BuiltinMap[name]
			found = ok && b.Nondeterministic
		}
		return found
	})
	return found
}

// evalRule evaluates the rule at path once. ok is false when evaluating it
// fails; v is nil when it is undefined.
func evalRule(ctx context.Context, c *ast.Compiler, store storage.Store, path string) (v *ast.Term, ok bool, err error) {
	pq, err := rego.New(
		rego.Compiler(c),
		rego.Store(store),
		rego.Query(path),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("fold %s: %w", path, err)
	}
	rs, err := pq.Eval(ctx, rego.EvalGenerateJSON(keepTerm))
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, nil
	}
	if len(rs) == 0 {
		return nil, true, nil
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, false, nil
	}
	t, isTerm := rs[0].Expressions[0].Value.(*ast.Term)
	if !isTerm {
		return nil, false, nil
	}
	return t, true, nil
}

// foldModule returns a copy of m in which the rules of every folded name are
// replaced by one rule reading its value; m itself when none of its rules
// is. A replaced name's key is cleared in
// keys: its rules in other modules of the package are dropped.
func foldModule(m *ast.Module, keys map[string]string) (*ast.Module, error) {
	replace := map[string]bool{}
	for _, r := range m.Rules {
		if _, ok := keys[rulePath(m, r)]; ok {
			replace[rulePath(m, r)] = true
		}
	}
	if len(replace) == 0 {
		return m, nil
	}
	out := m.Copy()
	rules := out.Rules
	out.Rules = nil
	for _, r := range rules {
		p := rulePath(m, r)
		if !replace[p] {
			out.Rules = append(out.Rules, r)
			continue
		}
		if keys[p] == "" {
			continue // replaced already
		}
		nr, err := valueRule(r, keys[p])
		if err != nil {
			return nil, fmt.Errorf("fold %s: %w", p, err)
		}
		nr.Module = out
		out.Rules = append(out.Rules, nr)
		keys[p] = ""
	}
	return out, nil
}

// valueRule is the rule that replaces the rules named like r:
// `name := data.__tokenguard_folded__.<key>`. A set reads the same from a
// complete rule as from rules giving its members.
func valueRule(r *ast.Rule, key string) (*ast.Rule, error) {
	name := r.Head.Ref()[0].Value.(ast.Var)
	src := fmt.Sprintf("package fold\n%s := data.%s.%s", name, foldRoot, key)
	pm, err := ast.ParseModuleWithOpts("fold.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, err
	}
	nr := pm.Rules[0]
	ast.WalkTerms(nr, func(t *ast.Term) bool {
		t.Location = r.Location
		return false
	})
	nr.Location = r.Location
	return nr, nil
}
