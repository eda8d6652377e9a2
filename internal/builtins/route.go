package builtins

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tokenguard/pdp/internal/route"
)

// RouteName is the name of the route matching built-in.
const RouteName = "pdp.route"

// routeDecl declares pdp.route. It depends on its arguments alone.
var routeDecl = &rego.Function{
	Name: RouteName,
	Description: "Finds the first route of a route table (data.pdp.routes) that a request matches, as " +
		"lib/route.rego documents the table, without scanning it: the table is compiled once and " +
		"kept while it is in use. Returns {\"index\": i, \"route\": the route}, {\"broken\": [indexes " +
		"of the routes that are not well-formed]} whatever the request when the table has any, and " +
		"is undefined when no route matches.",
	Decl: types.NewFunction(
		types.Args(
			types.Named("routes", types.NewArray(nil, types.A)).Description("the route table"),
			types.Named("method", types.S).Description("the request's method (compared in upper case)"),
			types.Named("host", types.S).Description("the request's host name (compared in lower case)"),
			types.Named("path", types.S).Description("the request's normalised path; one with a \".\" or \"..\" segment matches no route"),
		),
		types.Named("result", types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))).
			Description("{\"index\", \"route\"}, {\"broken\"}, or undefined"),
	),
}

func routeMatch(_ rego.BuiltinContext, routes, method, host, path *ast.Term) (*ast.Term, error) {
	arr, ok := routes.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("routes must be an array, got %s", ast.ValueName(routes.Value))
	}
	var req [3]string
	for i, t := range []*ast.Term{method, host, path} {
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("operand %d must be a string, got %s", i+2, ast.ValueName(t.Value))
		}
		req[i] = string(s)
	}
	t, err := compiledRoutes(arr)
	if err != nil {
		return nil, err
	}
	if broken := t.Broken(); len(broken) > 0 {
		idx := make([]*ast.Term, len(broken))
		for i, b := range broken {
			idx[i] = ast.InternedTerm(b)
		}
		return ast.ObjectTerm(ast.Item(ast.InternedTerm("broken"), ast.ArrayTerm(idx...))), nil
	}
	i, ok, err := t.Match(req[0], req[1], req[2])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("index"), ast.InternedTerm(i)),
		ast.Item(ast.InternedTerm("route"), arr.Elem(i)),
	), nil
}

// routeTables are the compiled route tables (see tables).
var routeTables = &tables[*route.Table]{compile: func(arr *ast.Array) (*route.Table, error) {
	t, err := route.Compile(arr)
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	return t, nil
}}

// RouteCompiles counts the route tables compiled since the process started
// (for tests: a policy version compiles its table once).
func RouteCompiles() int64 { return routeTables.compiles.Load() }

func compiledRoutes(arr *ast.Array) (*route.Table, error) { return routeTables.get(arr) }
