package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// testTimeout bounds one Rego test case run on load.
const testTimeout = 5 * time.Second

// TestsFailedError is the refusal of a policy whose own tests failed.
type TestsFailedError struct {
	// Source is the policy set's source.
	Source string
	// Failed names the failing tests (data.pkg.test_name), with the error
	// of those that did not evaluate.
	Failed []string
	// Total is the number of tests run.
	Total int
}

func (e *TestsFailedError) Error() string {
	shown := e.Failed
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(e.Failed) > len(shown) {
		more = fmt.Sprintf(", and %d more", len(e.Failed)-len(shown))
	}
	return fmt.Sprintf("tests of %s: %d of %d failed: %s%s", e.Source, len(e.Failed), e.Total, strings.Join(shown, "; "), more)
}

// runTests runs the set's own tests (Tests) against its modules and data
// with OPA's test runner, as `pdp opa test` would. A failing or erroring
// test refuses the set. The pdp.* built-ins must be registered (they are,
// wherever internal/builtins is linked in); tests replace them with mocks.
func runTests(ctx context.Context, set *Set) error {
	if len(set.Tests) == 0 {
		return nil
	}
	modules := make(map[string]*ast.Module, len(set.Modules)+len(set.Tests))
	for _, m := range slices.Concat(set.Modules, set.Tests) {
		modules[moduleName(m)] = m
	}
	results, err := tester.NewRunner().
		SetModules(modules).
		SetStore(inmem.NewFromObjectWithOpts(set.Data, inmem.OptRoundTripOnWrite(false))).
		SetDefaultRegoVersion(ast.RegoV1).
		CapturePrintOutput(false).
		SetTimeout(testTimeout).
		RunTests(ctx, nil)
	if err != nil {
		return fmt.Errorf("tests of %s: %w", set.Source, err)
	}
	var failed []string
	total := 0
	for r := range results {
		total++
		name := r.Package + "." + r.Name
		switch {
		case r.Error != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", name, r.Error))
		case r.Fail:
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return &TestsFailedError{Source: set.Source, Failed: failed, Total: total}
	}
	return nil
}

// moduleName is the name a module is compiled under: its file.
func moduleName(m *ast.Module) string {
	if m.Package.Location != nil {
		return m.Package.Location.File
	}
	return fmt.Sprintf("module_%p.rego", m)
}
