package builtins

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestDestinationBuiltin(t *testing.T) {
	table := []any{
		map[string]any{"name": "created", "broker": "nats", "destination": "orders.created", "operations": []any{"publish"}},
		map[string]any{"name": "orders", "broker": "nats", "destination": "orders.>"},
	}
	tests := []struct {
		name        string
		table       []any
		msg         [3]string
		want        string // the result's "destination".name, "broken", or "" (undefined)
		wantBroken  string
		wantErrPart string
	}{
		{name: "ok/first match", table: table, msg: [3]string{"nats", "publish", "orders.created"}, want: "created"},
		{name: "ok/operation decides", table: table, msg: [3]string{"nats", "subscribe", "orders.created"}, want: "orders"},
		{name: "ok/no match is undefined", table: table, msg: [3]string{"nats", "publish", "stock.x"}},
		{name: "ok/connect is never matched", table: table, msg: [3]string{"nats", "connect", "orders.x"}},
		{name: "fail/a broken table lists its broken destinations", table: append([]any{map[string]any{"broker": "nats", "destination": "a..b"}}, table...),
			msg: [3]string{"nats", "publish", "orders.created"}, wantBroken: "[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := eval(t, `x := pdp.destination(input.d, input.m[0], input.m[1], input.m[2])`, map[string]any{"d": tt.table, "m": tt.msg[:]})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantBroken != "":
				v, _ := ast.InterfaceToValue(x)
				if got := v.(ast.Object).Get(ast.StringTerm("broken")); got == nil || got.String() != tt.wantBroken {
					t.Fatalf("got %v, want broken %s", x, tt.wantBroken)
				}
			case tt.want == "":
				if x != nil {
					t.Fatalf("got %v, want undefined", x)
				}
			default:
				m, _ := x.(map[string]any)
				d, _ := m["destination"].(map[string]any)
				if d["name"] != tt.want {
					t.Fatalf("got %v, want destination %q", x, tt.want)
				}
			}
		})
	}
}

func TestDestinationBuiltinMalformedArguments(t *testing.T) {
	for _, tt := range []struct {
		name    string
		input   map[string]any
		wantErr string
	}{
		{"fail/table not an array", map[string]any{"d": map[string]any{}, "m": []any{"nats", "publish", "a"}}, "destinations must be an array, got object"},
		{"fail/broker not a string", map[string]any{"d": []any{}, "m": []any{1, "publish", "a"}}, "operand 2 must be a string, got number"},
		{"fail/destination not a string", map[string]any{"d": []any{}, "m": []any{"nats", "publish", nil}}, "operand 4 must be a string, got null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eval(t, `x := pdp.destination(input.d, input.m[0], input.m[1], input.m[2])`, tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// A table is compiled once, and found again by its identity or, as a new
// value of the same content, by its content; route and destination tables
// never share an entry, even for the same value.
func TestDestinationTableIsCompiledOnce(t *testing.T) {
	arr := ast.NewArray(ast.MustParseTerm(`{"broker": "nats", "destination": "cache.test.once"}`))
	before := DestinationCompiles()
	for range 3 {
		if _, err := destinationTables.get(arr); err != nil {
			t.Fatal(err)
		}
	}
	same := ast.NewArray(ast.MustParseTerm(`{"broker": "nats", "destination": "cache.test.once"}`))
	if _, err := destinationTables.get(same); err != nil {
		t.Fatal(err)
	}
	if got := DestinationCompiles() - before; got != 1 {
		t.Fatalf("%d compiles, want 1", got)
	}
	empty := ast.NewArray()
	if _, err := compiledRoutes(empty); err != nil {
		t.Fatal(err)
	}
	if d, err := destinationTables.get(empty); err != nil || d.Len() != 0 {
		t.Fatalf("the empty destination table: %v %v", d, err)
	}
}
