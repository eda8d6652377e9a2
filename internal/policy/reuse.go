package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Reuse says whether, and on what, the decisions of one policy version may be
// reused for a later request. It is worked out once, when the version is
// activated, from what the modules read of the input:
//
//   - a module that reads the input as a whole, or input.request or
//     input.request.headers with a key that is not a constant, depends on
//     every header, and decisions are reused only for the same headers;
//   - a module that reads input.now must define a rule valid_until in a
//     package main.rego gathers it from (tokenguard.lib.*, tokenguard.grants.*
//     or tokenguard.token_endpoint); otherwise no decision is reused, since
//     nothing would say for how long it holds;
//   - a module that imports from input is treated as reading what it imports.
//
// The state the pdp.* built-ins read is not part of this: the decision
// package re-reads it before it reuses a decision.
type Reuse struct {
	// Version identifies the activation; it changes whenever a policy
	// version is activated, even with the same revision.
	Version uint64
	// Previous is the Version this activation replaced (0 for the first),
	// and Activated when it was activated: a decision kept under Previous
	// may still be reused for a little while (decision_cache.version_spread).
	Previous  uint64
	Activated time.Time
	// Allowed is false when no decision of this version may be reused; Why
	// then says which module prevents it.
	Allowed bool
	Why     string
	// Headers are the request headers the policy reads by name (lower case,
	// sorted); AllHeaders is set when it may read any.
	Headers    []string
	AllHeaders bool
	// Context is set when the policy reads input.context.
	Context bool
	// Now is set when the policy reads input.now, so that a decision holds
	// only while input.now < its valid_until.
	Now bool
}

// validUntilPackages are the packages main.rego takes valid_until from.
var validUntilPackages = []string{"data.tokenguard.lib.", "data.tokenguard.grants.", "data.tokenguard.token_endpoint"}

// reuseOf analyses the modules of a policy version.
func reuseOf(modules []*ast.Module) Reuse {
	r := Reuse{Allowed: true}
	headers := map[string]bool{}
	for _, m := range modules {
		readsNow := false
		read := func(path []string) {
			switch {
			case len(path) == 0:
				r.Allowed, r.Why = false, fmt.Sprintf("%s reads the input as a whole", m.Package.Path)
			case path[0] == "now":
				readsNow = true
			case path[0] == "context":
				r.Context = true
			case path[0] != "request":
			case len(path) == 1, len(path) == 2 && path[1] == "headers":
				r.AllHeaders = true
			case path[1] == "headers":
				headers[strings.ToLower(path[2])] = true
			}
		}
		for _, imp := range m.Imports {
			if ref, ok := imp.Path.Value.(ast.Ref); ok && ref.HasPrefix(ast.InputRootRef) {
				read(constantPath(ref))
			}
		}
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			if ref.HasPrefix(ast.InputRootRef) {
				read(constantPath(ref))
			}
			return false
		})
		if readsNow {
			r.Now = true
			if r.Allowed && !definesValidUntil(m) {
				r.Allowed, r.Why = false, fmt.Sprintf("%s reads input.now but defines no valid_until rule where main.rego gathers it", m.Package.Path)
			}
		}
	}
	if !r.AllHeaders {
		for h := range headers {
			r.Headers = append(r.Headers, h)
		}
		slices.Sort(r.Headers)
	}
	return r
}

// constantPath is the part of an input ref after "input" up to its first
// key that is not a constant string: input.request.headers[x] reads all of
// input.request.headers.
func constantPath(ref ast.Ref) []string {
	path := make([]string, 0, len(ref)-1)
	for _, t := range ref[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		path = append(path, string(s))
	}
	return path
}

func definesValidUntil(m *ast.Module) bool {
	pkg := m.Package.Path.String()
	if !slices.ContainsFunc(validUntilPackages, func(p string) bool { return strings.HasPrefix(pkg, p) || pkg == strings.TrimSuffix(p, ".") }) {
		return false
	}
	for _, rule := range m.Rules {
		if ref := rule.Head.Ref(); len(ref) == 1 && ref[0].Value.Compare(ast.Var("valid_until")) == 0 {
			return true
		}
	}
	return false
}
