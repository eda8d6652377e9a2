// Package policy is tokenguard's OPA engine: it loads Rego modules and their
// data from a watched directory or from OPA bundles (local or from a bundle
// service, optionally signed), compiles them, prepares the decision query
// once per policy version and swaps it in atomically, and evaluates it with
// the input as an ast.Value.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// Query is the decision every evaluation asks for.
const Query = "data.tokenguard.main.decision"

// ErrNoPolicy is returned by Eval before any policy has been activated.
var ErrNoPolicy = errors.New("no policy is active")

// Engine evaluates the active policy. It is safe for concurrent use; a new
// policy version replaces the old one atomically, so an evaluation sees one
// version from start to end.
type Engine struct {
	active      atomic.Pointer[version]
	activations atomic.Uint64
	// retired adds up the sizes of the versions replaced since Sources
	// last looked (to hand their memory back to the operating system).
	retired atomic.Int64
	logger  *slog.Logger
	// noFold evaluates every rule on every request (see fold.go): for tests
	// that compare the two.
	noFold bool
	// noShippedValidator validates a version by its own modules alone:
	// for tests of how the guardrails treat data the validator refuses.
	noShippedValidator bool
	// compiled is the active version's modules as compiled for folding.
	compiled atomic.Pointer[compiledModules]
}

// version is one compiled, prepared policy.
type version struct {
	query     rego.PreparedEvalQuery
	settings  Settings
	revision  string
	source    string
	activated time.Time
	folded    int
	bytes     int64 // the size of its modules and data (Set.Bytes)
	// base keeps what evaluations read from the version's store.
	base *baseCache
	// set is what the version was built from, and explain its explanation
	// query, compiled on first use (explain.go).
	set     *Set
	explain *explainer
}

// Info describes the active policy version.
type Info struct {
	Revision  string    `json:"revision"`
	Source    string    `json:"source"`
	Activated time.Time `json:"activated"`
	// FoldedRules: how many rules were evaluated once, at activation,
	// rather than on every request (fold.go).
	FoldedRules int `json:"folded_rules"`
}

// NewEngine returns an engine with no active policy.
func NewEngine(logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{logger: logger}
}

// Activate compiles and prepares the policy set and, only if that succeeds,
// makes it the active version. On error the previous version keeps serving.
func (e *Engine) Activate(ctx context.Context, set *Set) error {
	return e.activate(ctx, set, nil)
}

// Check does with set what Activate does, up to but not including making
// it the active version: it reports why the set would be refused (the
// error is then an ErrRefused), nil when it would be activated. With tests
// set, the set's own tests must pass too (policy.test_on_load).
func (e *Engine) Check(ctx context.Context, set *Set, tests bool) error {
	_, _, err := e.build(ctx, set, func(ctx context.Context, set *Set) error {
		if !definesDecision(set.Modules) {
			return fmt.Errorf("policy from %s: no module defines %s", set.Source, Query)
		}
		if tests {
			return runTests(ctx, set)
		}
		return nil
	})
	return err
}

// activate is Activate with a last check (that the decision rule exists,
// the policy's own tests) that runs after the set compiled and before it is
// published. Whatever fails is an ErrRefused.
func (e *Engine) activate(ctx context.Context, set *Set, check func(context.Context, *Set) error) error {
	v, compiled, err := e.build(ctx, set, check)
	if err != nil {
		return err
	}
	warm(ctx, v.query)
	v.settings.Reuse.Version = e.activations.Add(1)
	v.settings.Reuse.Activated = time.Now()
	if prev := e.active.Load(); prev != nil {
		v.settings.Reuse.Previous = prev.settings.Reuse.Version
	}
	if !v.settings.Reuse.Allowed {
		e.logger.Warn("decisions of this policy are not reused", "revision", set.Revision, "why", v.settings.Reuse.Why)
	}
	old := e.active.Swap(v)
	e.compiled.Store(compiled)
	e.logger.Info("policy activated", "revision", set.Revision, "source", set.Source, "modules", len(set.Modules), "folded_rules", v.folded)
	if old != nil {
		e.retired.Add(old.bytes)
	}
	return nil
}

// warmInputs are a request without a token whose path has a ";"
// parameter, and a message without a token: the shipped policy looks the
// request's route and the message's destination up whatever the token
// (main.rego).
var warmInputs = []ast.Value{
	ast.MustParseTerm(`{"request": {"method": "GET", "host": "", "path": "/;"}}`).Value,
	ast.MustParseTerm(`{"message": {"broker": "nats", "operation": "publish", "destination": "x"}}`).Value,
}

// warm evaluates the decision query before the version serves, so that
// what a policy compiles on first use (the route and destination tables,
// see pdp.route and pdp.destination) is compiled at activation rather than
// by the first request. The answers are not used.
func warm(ctx context.Context, pq rego.PreparedEvalQuery) {
	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	for _, input := range warmInputs {
		_, _ = pq.Eval(ctx, rego.EvalParsedInput(input))
	}
}

// build compiles, prepares and validates set: the version Activate would
// publish. Its errors are ErrRefused.
func (e *Engine) build(ctx context.Context, set *Set, check func(context.Context, *Set) error) (*version, *compiledModules, error) {
	pq, folded, compiled, err := e.prepare(ctx, set)
	if err != nil {
		return nil, nil, refused(fmt.Errorf("compile policy from %s: %w", set.Source, err))
	}
	store := inmem.NewFromObjectWithOpts(set.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	data, err := effectiveData(ctx, set.Modules, set.Data, store)
	if err != nil {
		return nil, nil, refused(fmt.Errorf("policy from %s: %w", set.Source, err))
	}
	errs, err := validate(ctx, set.Modules, compiled, data, store, !e.noShippedValidator)
	if err != nil {
		return nil, nil, refused(fmt.Errorf("policy from %s: %w", set.Source, err))
	}
	if len(errs) > 0 {
		return nil, nil, &ConfigErrorsError{Source: set.Source, Errors: errs}
	}
	settings, err := settingsFrom(data)
	if err != nil {
		return nil, nil, refused(fmt.Errorf("policy data from %s: %w", set.Source, err))
	}
	if check != nil {
		if err := check(ctx, set); err != nil {
			return nil, nil, refused(err)
		}
	}
	settings.Reuse = reuseOf(set.Modules)
	var cm *compiledModules
	if compiled != nil {
		cm = &compiledModules{modules: set.Modules, c: compiled}
	}
	return &version{query: pq, settings: settings, revision: set.Revision, source: set.Source, activated: time.Now(), folded: folded, bytes: set.Bytes, base: newBaseCache(),
		set: set, explain: &explainer{}}, cm, nil
}

// prepare compiles the set, folded (fold.go) unless folding is off, and
// prepares the decision query; it returns how many rules were folded, and
// the set's modules as compiled for folding (nil when folding is off or
// they did not compile). Should the folded modules not compile where the
// set does, the set is served as it is: folding only ever saves work.
func (e *Engine) prepare(ctx context.Context, set *Set) (rego.PreparedEvalQuery, int, *ast.Compiler, error) {
	compile := func(modules []*ast.Module, store storage.Store) (rego.PreparedEvalQuery, error) {
		return rego.New(
			rego.Query(Query),
			rego.Store(store),
			rego.StrictBuiltinErrors(true),
			rego.SetRegoVersion(ast.RegoV1),
			func(r *rego.Rego) {
				for _, m := range modules {
					rego.ParsedModule(m)(r)
				}
			},
		).PrepareForEval(ctx)
	}
	newStore := func() storage.Store {
		return inmem.NewFromObjectWithOpts(set.Data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	}
	var compiled *ast.Compiler
	if !e.noFold {
		store := newStore()
		f, err := foldCompiled(ctx, Query, set.Modules, e.compiled.Load().of(set.Modules), set.Data, store)
		compiled = f.Compiler
		switch {
		case err != nil:
			e.logger.Warn("policy rules are evaluated on every request", "revision", set.Revision, "why", err)
		case f.Skipped != "":
			e.logger.Warn("policy rules are evaluated on every request", "revision", set.Revision, "why", f.Skipped)
		case f.Rules > 0:
			pq, err := compile(f.Modules, store)
			if err == nil {
				return pq, f.Rules, compiled, nil
			}
			e.logger.Warn("policy rules are evaluated on every request", "revision", set.Revision, "why", fmt.Sprintf("folded policy: %v", err))
		}
	}
	pq, err := compile(set.Modules, newStore())
	return pq, 0, compiled, err
}

// Active describes the active policy version, and false when there is none.
func (e *Engine) Active() (Info, bool) {
	v := e.active.Load()
	if v == nil {
		return Info{}, false
	}
	return Info{Revision: v.revision, Source: v.source, Activated: v.activated, FoldedRules: v.folded}, true
}

// Settings returns the Go-side settings of the active policy (zero without
// one).
func (e *Engine) Settings() Settings {
	if v := e.active.Load(); v != nil {
		return v.settings
	}
	return Settings{}
}

// Ready reports whether a policy is active.
func (e *Engine) Ready() error {
	if e.active.Load() == nil {
		return ErrNoPolicy
	}
	return nil
}

// Eval evaluates the decision query against input and returns the policy's
// answer and the revision that gave it. Any error, an undefined decision or
// one of the wrong shape is returned as an error: the caller must deny.
func (e *Engine) Eval(ctx context.Context, input ast.Value, now time.Time) (Result, string, error) {
	return e.EvalRecorded(ctx, input, now, builtins.NDBCache{})
}

// EvalRecorded is Eval with the answers of nondeterministic built-ins
// given: a built-in call whose arguments ndb holds is answered from it,
// without calling the built-in (OPA's nd_builtin_cache); other calls are
// made and added to ndb. A replay evaluates a recorded decision so.
func (e *Engine) EvalRecorded(ctx context.Context, input ast.Value, now time.Time, ndb builtins.NDBCache) (Result, string, error) {
	v := e.active.Load()
	if v == nil {
		return Result{}, "", ErrNoPolicy
	}
	if ndb == nil {
		ndb = builtins.NDBCache{}
	}
	res, err := v.eval(ctx, input, now, ndb)
	return res, v.revision, err
}

// eval evaluates the version's decision query (see EvalRecorded).
func (v *version) eval(ctx context.Context, input ast.Value, now time.Time, ndb builtins.NDBCache) (Result, error) {
	vc := getVCache()
	defer putVCache(vc)
	rs, err := v.query.Eval(ctx,
		rego.EvalParsedInput(input),
		rego.EvalTime(now),
		rego.EvalGenerateJSON(keepTerm),
		rego.EvalNDBuiltinCache(ndb),
		rego.EvalVirtualCache(vc),
		rego.EvalBaseCache(v.base),
	)
	if err != nil {
		return Result{}, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Result{}, fmt.Errorf("evaluate %s: decision is undefined", Query)
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Result{}, fmt.Errorf("evaluate %s: unexpected result type %T", Query, rs[0].Expressions[0].Value)
	}
	res, err := parseResult(t.Value)
	if err != nil {
		return Result{}, fmt.Errorf("evaluate %s: %w", Query, err)
	}
	for name := range ndb {
		res.Nondeterministic = append(res.Nondeterministic, name)
	}
	res.NDBuiltinCache = ndb
	return res, nil
}

// keepTerm hands the result term back as is, skipping the conversion of the
// decision to Go maps: parseResult reads the ast.Value directly.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
