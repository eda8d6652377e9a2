package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	shipped "github.com/tokenguard/pdp/rego"
)

// ConfigErrorsQuery is the set of what is wrong with a version's data
// (rego/config_errors.rego): the shipped policy fills it, a policy of one's
// own may add to it. A version with any is refused.
const ConfigErrorsQuery = "data.tokenguard.config_errors"

// ErrRefused marks the refusal of a policy version that was read: it did
// not compile, its data has configuration errors (*ConfigErrorsError), its
// tests failed, or it is over a size limit (*TooLargeError). A source that
// could not be read or reached is not a refusal.
var ErrRefused = errors.New("policy version refused")

// refused marks err as a refusal.
func refused(err error) error {
	if err == nil || errors.Is(err, ErrRefused) {
		return err
	}
	return refusal{err}
}

type refusal struct{ err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{r.err, ErrRefused} }

// ConfigError is one entry of data.tokenguard.config_errors.
type ConfigError struct {
	// Path is where in data the problem is: pdp.routes[0].methods.
	Path string `json:"path"`
	// Message says what is wrong.
	Message string `json:"message"`
}

func (e ConfigError) String() string { return e.Path + ": " + e.Message }

// ConfigErrorsError is the refusal of a version whose data has
// configuration errors.
type ConfigErrorsError struct {
	// Source is the version's source.
	Source string
	// Errors are sorted by path.
	Errors []ConfigError
}

func (e *ConfigErrorsError) Error() string {
	shown := e.Errors
	if len(shown) > 5 {
		shown = shown[:5]
	}
	parts := make([]string, len(shown))
	for i, c := range shown {
		parts[i] = c.String()
	}
	more := ""
	if len(e.Errors) > len(shown) {
		more = fmt.Sprintf(", and %d more", len(e.Errors)-len(shown))
	}
	noun := "configuration errors"
	if len(e.Errors) == 1 {
		noun = "a configuration error"
	}
	if len(e.Errors) > 1 {
		noun = fmt.Sprintf("%d %s", len(e.Errors), noun)
	}
	return fmt.Sprintf("policy data from %s has %s: %s%s", e.Source, noun, strings.Join(parts, "; "), more)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *ConfigErrorsError) Is(target error) bool { return target == ErrRefused }

// maxConfigErrors bounds the errors kept from one version.
const maxConfigErrors = 1000

// validateTimeout bounds the validation of one version's data (the
// shipped validator and the source's own rules together).
var validateTimeout = 10 * time.Second

// validate collects what is wrong with a version's data: the shipped
// validator (config_errors.rego, embedded) run against its data.pdp,
// whatever the source holds, plus what the source's own modules add to
// data.tokenguard.config_errors. A source that brings no copy of the
// shipped validator (a bundle or directory of one's own) is validated all
// the same; a source without data.pdp has nothing for it to check.
func validate(ctx context.Context, modules []*ast.Module, compiled *ast.Compiler, data map[string]any, store storage.Store, withShipped bool) ([]ConfigError, error) {
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	var base []ConfigError
	if withShipped {
		var err error
		if base, err = shippedConfigErrors(ctx, data); err != nil {
			return nil, err
		}
	}
	own, err := configErrors(ctx, modules, compiled, store)
	if err != nil {
		return nil, err
	}
	return mergeConfigErrors(base, own), nil
}

// pdpRef is data.pdp, the settings the shipped validator checks.
var pdpRef = ast.MustParseRef("data.pdp")

// effectiveData is data with data.pdp as the policy reads it: when one of
// the source's modules has a package under data.pdp, its rules make part of
// data.pdp, which is then evaluated (within the validation's bound), so
// that settings made by rules are validated and read as data is.
func effectiveData(ctx context.Context, modules []*ast.Module, data map[string]any, store storage.Store) (map[string]any, error) {
	if !slices.ContainsFunc(modules, func(m *ast.Module) bool { return m.Package.Path.HasPrefix(pdpRef) }) {
		return data, nil
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	opts := []func(*rego.Rego){rego.Query(pdpRef.String()), rego.Store(store), rego.StrictBuiltinErrors(true), rego.SetRegoVersion(ast.RegoV1)}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate data.pdp: %w", err)
	}
	out := make(map[string]any, len(data)+1)
	maps.Copy(out, data)
	delete(out, "pdp")
	if len(rs) == 1 && len(rs[0].Expressions) == 1 {
		out["pdp"] = rs[0].Expressions[0].Value
	}
	return out, nil
}

// shippedValidator is the shipped validator's modules, parsed and
// compiled once; validations share the compiler one at a time.
var shippedValidator = sync.OnceValues(func() (*ast.Compiler, error) {
	srcs := shipped.ValidatorModules()
	mods := make(map[string]*ast.Module, len(srcs))
	for name, src := range srcs {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return nil, fmt.Errorf("parse the shipped validator %s: %w", name, err)
		}
		mods[name] = m
	}
	c := ast.NewCompiler()
	if c.Compile(mods); c.Failed() {
		return nil, fmt.Errorf("compile the shipped validator: %w", c.Errors)
	}
	return c, nil
})

var shippedValidatorMu sync.Mutex

// shippedConfigErrors evaluates the shipped validator against data.pdp
// alone, in a compiler of its own: the source's modules neither see it nor
// clash with it.
func shippedConfigErrors(ctx context.Context, data map[string]any) ([]ConfigError, error) {
	c, err := shippedValidator()
	if err != nil {
		return nil, err
	}
	only := map[string]any{}
	if pdp, ok := data["pdp"]; ok {
		only["pdp"] = pdp
	}
	store := inmem.NewFromObjectWithOpts(only, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	shippedValidatorMu.Lock()
	defer shippedValidatorMu.Unlock()
	errs, err := evalConfigErrors(ctx, store, rego.Compiler(c))
	if err != nil {
		return nil, fmt.Errorf("shipped validator: %w", err)
	}
	return errs, nil
}

// mergeConfigErrors joins two sorted lists, each error once, bounded.
func mergeConfigErrors(a, b []ConfigError) []ConfigError {
	out := append(slices.Clip(a), b...)
	sortConfigErrors(out)
	return capConfigErrors(slices.Compact(out))
}

func sortConfigErrors(errs []ConfigError) {
	slices.SortFunc(errs, func(a, b ConfigError) int {
		return strings.Compare(a.Path+"\x00"+a.Message, b.Path+"\x00"+b.Message)
	})
}

func capConfigErrors(errs []ConfigError) []ConfigError {
	if len(errs) > maxConfigErrors {
		errs = append(errs[:maxConfigErrors-1], ConfigError{Path: "(more)", Message: fmt.Sprintf("%d more errors", len(errs)-maxConfigErrors+1)})
	}
	return errs
}

// configErrors evaluates ConfigErrorsQuery against the modules and store;
// none when the policy does not define it. With compiled (the modules
// compiled already), they are not compiled again.
func configErrors(ctx context.Context, modules []*ast.Module, compiled *ast.Compiler, store storage.Store) ([]ConfigError, error) {
	if compiled != nil {
		return evalConfigErrors(ctx, store, rego.Compiler(compiled))
	}
	return evalConfigErrors(ctx, store, func(r *rego.Rego) {
		for _, m := range modules {
			rego.ParsedModule(m)(r)
		}
	})
}

// evalConfigErrors evaluates ConfigErrorsQuery with the modules or
// compiler that opt gives.
func evalConfigErrors(ctx context.Context, store storage.Store, opt func(*rego.Rego)) ([]ConfigError, error) {
	pq, err := rego.New(
		rego.Query(ConfigErrorsQuery),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
		opt,
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", ConfigErrorsQuery, err)
	}
	rs, err := pq.Eval(ctx, rego.EvalGenerateJSON(keepTerm))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ConfigErrorsQuery, err)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("evaluate %s: more than one value", ConfigErrorsQuery)
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("evaluate %s: unexpected result type %T", ConfigErrorsQuery, rs[0].Expressions[0].Value)
	}
	return parseConfigErrors(t.Value)
}

// parseConfigErrors reads a set (or array) of {"path", "message"} objects.
func parseConfigErrors(v ast.Value) ([]ConfigError, error) {
	var terms []*ast.Term
	switch c := v.(type) {
	case ast.Set:
		terms = c.Slice()
	case *ast.Array:
		c.Foreach(func(t *ast.Term) { terms = append(terms, t) })
	default:
		return nil, fmt.Errorf("%s is not a set", ConfigErrorsQuery)
	}
	out := make([]ConfigError, 0, min(len(terms), maxConfigErrors))
	for _, t := range terms {
		obj, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("%s holds %v, not an object with a path and a message", ConfigErrorsQuery, t)
		}
		path, ok1 := stringField(obj, "path")
		msg, ok2 := stringField(obj, "message")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s holds %v, not an object with a path and a message", ConfigErrorsQuery, t)
		}
		out = append(out, ConfigError{Path: path, Message: msg})
	}
	sortConfigErrors(out)
	return capConfigErrors(out), nil
}

func stringField(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.StringTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}
