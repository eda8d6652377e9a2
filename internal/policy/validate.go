package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
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

// configErrors evaluates ConfigErrorsQuery against the compiled modules
// and store; none when the policy does not define it.
func configErrors(ctx context.Context, modules []*ast.Module, store storage.Store) ([]ConfigError, error) {
	ctx, cancel := context.WithTimeout(ctx, foldTimeout)
	defer cancel()
	pq, err := rego.New(
		rego.Query(ConfigErrorsQuery),
		rego.Store(store),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
		func(r *rego.Rego) {
			for _, m := range modules {
				rego.ParsedModule(m)(r)
			}
		},
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
	slices.SortFunc(out, func(a, b ConfigError) int {
		return strings.Compare(a.Path+"\x00"+a.Message, b.Path+"\x00"+b.Message)
	})
	if len(out) > maxConfigErrors {
		out = append(out[:maxConfigErrors-1], ConfigError{Path: "(more)", Message: fmt.Sprintf("%d more errors", len(out)-maxConfigErrors+1)})
	}
	return out, nil
}

func stringField(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.StringTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}
