package builtins

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tokenguard/pdp/internal/destination"
)

// DestinationName is the name of the destination matching built-in.
const DestinationName = "pdp.destination"

// destinationDecl declares pdp.destination. It depends on its arguments
// alone.
var destinationDecl = &rego.Function{
	Name: DestinationName,
	Description: "Finds the first destination of a destination table (data.pdp.destinations) that a " +
		"messaging operation matches, as lib/destination.rego documents the table, without scanning " +
		"it: the table is compiled once and kept while it is in use. Returns {\"index\": i, " +
		"\"destination\": the destination}, {\"broken\": [indexes of the destinations that are not " +
		"well-formed]} whatever the message when the table has any, and is undefined when no " +
		"destination matches.",
	Decl: types.NewFunction(
		types.Args(
			types.Named("destinations", types.NewArray(nil, types.A)).Description("the destination table"),
			types.Named("broker", types.S).Description("the message's broker (\"nats\", \"rabbitmq\", \"kafka\", ...)"),
			types.Named("operation", types.S).Description("the message's operation (\"publish\", \"subscribe\", \"consume\", \"configure\")"),
			types.Named("destination", types.S).Description("the destination the message names (a subject, an exchange or queue, a topic)"),
		),
		types.Named("result", types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))).
			Description("{\"index\", \"destination\"}, {\"broken\"}, or undefined"),
	),
}

func destinationMatch(_ rego.BuiltinContext, destinations, broker, operation, dest *ast.Term) (*ast.Term, error) {
	arr, ok := destinations.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("destinations must be an array, got %s", ast.ValueName(destinations.Value))
	}
	var msg [3]string
	for i, t := range []*ast.Term{broker, operation, dest} {
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("operand %d must be a string, got %s", i+2, ast.ValueName(t.Value))
		}
		msg[i] = string(s)
	}
	t, _ := destinationTables.get(arr)
	if broken := t.Broken(); len(broken) > 0 {
		idx := make([]*ast.Term, len(broken))
		for i, b := range broken {
			idx[i] = ast.InternedTerm(b)
		}
		return ast.ObjectTerm(ast.Item(ast.InternedTerm("broken"), ast.ArrayTerm(idx...))), nil
	}
	i, ok := t.Match(msg[0], msg[1], msg[2])
	if !ok {
		return nil, nil
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("index"), ast.InternedTerm(i)),
		ast.Item(ast.InternedTerm("destination"), arr.Elem(i)),
	), nil
}

// destinationTables are the compiled destination tables (see tables).
var destinationTables = &tables[*destination.Table]{compile: func(arr *ast.Array) (*destination.Table, error) {
	return destination.Compile(arr), nil
}}

// DestinationCompiles counts the destination tables compiled since the
// process started (for tests: a policy version compiles its table once).
func DestinationCompiles() int64 { return destinationTables.compiles.Load() }
