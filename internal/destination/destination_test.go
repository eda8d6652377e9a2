package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// referenceFile is the destination matching written in Rego: what the
// tests compare the compiled table with.
const referenceFile = "../../rego/lib/destination_reference_test.rego"

// reference evaluates the Rego reference for every message of a table.
type reference struct{ pq rego.PreparedEvalQuery }

func newReference(tb testing.TB) *reference {
	tb.Helper()
	src, err := os.ReadFile(referenceFile)
	if err != nil {
		tb.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query(`x := [[i, a] | some i, q in input.messages; a := data.tokenguard.lib.destination_reference.destination(input.destinations, q[0], q[1], q[2])]`),
		rego.Module(referenceFile, string(src)),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return &reference{pq: pq}
}

// answer is what a table answers for one message: the broken destinations,
// or the index of the destination that matches (-1: none).
type answer struct {
	broken []int
	index  int
}

func (a answer) String() string {
	if a.broken != nil {
		return fmt.Sprintf("broken %v", a.broken)
	}
	return fmt.Sprintf("destination %d", a.index)
}

// answers are the reference's answers to messages ([broker, operation,
// destination]).
func (r *reference) answers(tb testing.TB, table *ast.Array, messages [][3]string) []answer {
	tb.Helper()
	msgs := make([]*ast.Term, len(messages))
	for i, q := range messages {
		msgs[i] = ast.ArrayTerm(ast.StringTerm(q[0]), ast.StringTerm(q[1]), ast.StringTerm(q[2]))
	}
	input := ast.NewObject(
		ast.Item(ast.StringTerm("destinations"), ast.NewTerm(table)),
		ast.Item(ast.StringTerm("messages"), ast.ArrayTerm(msgs...)),
	)
	rs, err := r.pq.Eval(context.Background(), rego.EvalParsedInput(input))
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]answer, len(messages))
	for i := range out {
		out[i].index = -1
	}
	for _, pair := range rs[0].Bindings["x"].([]any) {
		p := pair.([]any)
		i, _ := p[0].(json.Number).Int64()
		a := p[1].(map[string]any)
		if b, ok := a["broken"]; ok {
			out[i].broken = []int{}
			for _, n := range b.([]any) {
				k, _ := n.(json.Number).Int64()
				out[i].broken = append(out[i].broken, int(k))
			}
			continue
		}
		k, _ := a["index"].(json.Number).Int64()
		out[i].index = int(k)
	}
	return out
}

// answers are the compiled table's answers to messages.
func (t *Table) answers(messages [][3]string) []answer {
	out := make([]answer, len(messages))
	for i, q := range messages {
		if b := t.Broken(); len(b) > 0 {
			out[i].broken = slices.Clone(b)
			continue
		}
		k, ok := t.Match(q[0], q[1], q[2])
		out[i].index = -1
		if ok {
			out[i].index = k
		}
	}
	return out
}

func mustArray(tb testing.TB, js string) *ast.Array {
	tb.Helper()
	v, err := ast.ParseTerm(js)
	if err != nil {
		tb.Fatal(err)
	}
	a, ok := v.Value.(*ast.Array)
	if !ok {
		tb.Fatalf("%s is not an array", js)
	}
	return a
}

func TestMatch(t *testing.T) {
	table := mustArray(t, `[
		{"name": "created", "broker": "nats", "destination": "orders.created", "operations": ["publish"]},
		{"name": "one level", "broker": "nats", "destination": "orders.*", "operations": ["subscribe"]},
		{"name": "all orders", "broker": "nats", "destination": "orders.>", "operations": ["subscribe", "publish"]},
		{"name": "eu stock", "broker": "nats", "destination": "stock.*.eu"},
		{"name": "orders exchange", "broker": "rabbitmq", "destination": "orders", "operations": ["publish"]},
		{"name": "eu keys", "broker": "rabbitmq", "destination": "*.eu.#", "operations": ["publish"]},
		{"name": "audit", "broker": "rabbitmq", "destination": "audit.#.done", "operations": ["consume"]},
		{"name": "topic", "broker": "kafka", "destination": "payments"},
		{"name": "topics", "broker": "kafka", "destination": "orders.*", "operations": ["consume"]},
		{"name": "everything", "broker": "kafka", "destination": "*", "operations": ["publish"]}
	]`)
	tests := []struct {
		name                           string
		broker, operation, destination string
		want                           int
	}{
		{"ok/nats exact subject", "nats", "publish", "orders.created", 0},
		{"ok/nats first match in table order", "nats", "subscribe", "orders.created", 1},
		{"ok/nats operation must be listed", "nats", "publish", "orders.updated", 2},
		{"ok/nats star is one token", "nats", "subscribe", "orders.updated", 1},
		{"ok/nats gt takes more tokens", "nats", "subscribe", "orders.eu.created", 2},
		{"fail/nats gt needs a token", "nats", "subscribe", "orders", -1},
		{"ok/nats a subscription with a star is covered by a star", "nats", "subscribe", "orders.*", 1},
		{"ok/nats a subscription with gt is covered by gt only", "nats", "subscribe", "orders.>", 2},
		{"ok/nats a literal never covers a star, gt does", "nats", "publish", "orders.*", 2},
		{"ok/nats star in the middle", "nats", "consume", "stock.42.eu", 3},
		{"fail/nats star in the middle is one token", "nats", "consume", "stock.4.2.eu", -1},
		{"fail/nats a star of the table never covers gt", "nats", "consume", "stock.>.eu", -1},
		{"fail/nats an empty token", "nats", "subscribe", "orders..x", -1},
		{"fail/nats gt before the last token", "nats", "subscribe", "orders.>.x", -1},
		{"fail/nats a space", "nats", "subscribe", "orders.a b", -1},
		{"fail/nats connect is never matched", "nats", "connect", "stock.42.eu", -1},
		{"ok/configure is an operation of an entry without operations", "nats", "configure", "stock.42.eu", 3},
		{"fail/another broker's destination", "rabbitmq", "subscribe", "orders.created", -1},
		{"ok/rabbitmq exchange by name", "rabbitmq", "publish", "orders", 4},
		{"fail/rabbitmq names are exact", "rabbitmq", "publish", "orders2", -1},
		{"ok/rabbitmq star and hash", "rabbitmq", "publish", "x.eu.a.b", 5},
		{"ok/rabbitmq hash takes no word", "rabbitmq", "publish", "x.eu", 5},
		{"ok/rabbitmq hash in the middle takes none", "rabbitmq", "consume", "audit.done", 6},
		{"ok/rabbitmq hash in the middle takes several", "rabbitmq", "consume", "audit.a.b.c.done", 6},
		{"ok/rabbitmq empty words are words", "rabbitmq", "publish", ".eu.", 5},
		{"ok/rabbitmq a binding key with hash is covered by hash", "rabbitmq", "consume", "audit.#.done", 6},
		{"fail/rabbitmq a star of the table never covers hash", "rabbitmq", "publish", "#.eu", -1},
		{"ok/kafka exact", "kafka", "consume", "payments", 7},
		{"ok/kafka prefix", "kafka", "consume", "orders.eu.created", 8},
		{"ok/kafka prefix takes zero characters", "kafka", "consume", "orders.", 8},
		{"fail/kafka prefix is a prefix", "kafka", "consume", "orders", -1},
		{"ok/kafka star alone takes anything", "kafka", "publish", "anything", 9},
		{"fail/kafka star alone only for its operations", "kafka", "subscribe", "anything", -1},
		{"fail/empty destination", "kafka", "publish", "", -1},
		{"fail/unknown broker", "pulsar", "publish", "orders", -1},
	}
	c := Compile(table)
	ref := newReference(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Match(tt.broker, tt.operation, tt.destination)
			if !ok {
				got = -1
			}
			if got != tt.want {
				t.Errorf("Match(%q, %q, %q) = %d, want %d", tt.broker, tt.operation, tt.destination, got, tt.want)
			}
			want := ref.answers(t, table, [][3]string{{tt.broker, tt.operation, tt.destination}})
			if want[0].index != tt.want {
				t.Errorf("the Rego reference answers %s, want destination %d", want[0], tt.want)
			}
		})
	}
}

func TestMatchBounds(t *testing.T) {
	table := mustArray(t, `[{"broker": "nats", "destination": ">"}, {"broker": "kafka", "destination": "*"}]`)
	c := Compile(table)
	tests := []struct {
		name, broker, destination string
		want                      bool
	}{
		{"ok/nats 64 tokens", "nats", strings.Repeat("a.", 63) + "a", true},
		{"fail/nats 65 tokens", "nats", strings.Repeat("a.", 64) + "a", false},
		{"ok/kafka 1024 bytes", "kafka", strings.Repeat("a", 1024), true},
		{"fail/kafka 1025 bytes", "kafka", strings.Repeat("a", 1025), false},
		{"fail/kafka a control character", "kafka", "a\x00", false},
		{"fail/kafka a delete", "kafka", "a\x7f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := c.Match(tt.broker, "publish", tt.destination); ok != tt.want {
				t.Errorf("matched %v, want %v", ok, tt.want)
			}
		})
	}
}

func TestCompileListsBrokenDestinationsAndMatchesNothing(t *testing.T) {
	long := strings.Repeat("a", 1025)
	deep := strings.Repeat("a.", 64) + "a"
	tests := []struct {
		name   string
		table  string
		broken []int
	}{
		{"fail/not an object", `[{"broker": "nats", "destination": ">"}, "x", 3]`, []int{1, 2}},
		{"fail/no broker", `[{"destination": "a"}]`, []int{0}},
		{"fail/a broker in upper case", `[{"broker": "NATS", "destination": "a"}]`, []int{0}},
		{"fail/a broker too long", `[{"broker": "` + strings.Repeat("b", 33) + `", "destination": "a"}]`, []int{0}},
		{"fail/no destination", `[{"broker": "nats"}]`, []int{0}},
		{"fail/an empty destination", `[{"broker": "kafka", "destination": ""}]`, []int{0}},
		{"fail/a destination too long", `[{"broker": "kafka", "destination": "` + long + `"}]`, []int{0}},
		{"fail/a destination too deep", `[{"broker": "kafka", "destination": "` + deep + `"}]`, []int{0}},
		{"fail/a space", `[{"broker": "rabbitmq", "destination": "my queue"}]`, []int{0}},
		{"fail/nats empty token", `[{"broker": "nats", "destination": "a..b"}]`, []int{0}},
		{"fail/nats trailing dot", `[{"broker": "nats", "destination": "a."}]`, []int{0}},
		{"fail/nats gt not last", `[{"broker": "nats", "destination": "a.>.b"}]`, []int{0}},
		{"fail/nats star within a token", `[{"broker": "nats", "destination": "a*.b"}]`, []int{0}},
		{"fail/nats gt within a token", `[{"broker": "nats", "destination": "a.b>"}]`, []int{0}},
		{"fail/rabbitmq hash within a word", `[{"broker": "rabbitmq", "destination": "a.b#"}]`, []int{0}},
		{"fail/kafka star not last", `[{"broker": "kafka", "destination": "a*b"}]`, []int{0}},
		{"fail/kafka two stars", `[{"broker": "kafka", "destination": "a**"}]`, []int{0}},
		{"fail/operations a string", `[{"broker": "nats", "destination": "a", "operations": "publish"}]`, []int{0}},
		{"fail/scopes a string", `[{"broker": "nats", "destination": "a", "scopes": "s"}]`, []int{0}},
		{"fail/an audience that is not a string", `[{"broker": "nats", "destination": "a", "audience": 1}]`, []int{0}},
		{"fail/details without a type", `[{"broker": "nats", "destination": "a", "authorization_details": {}}]`, []int{0}},
		{"ok/rabbitmq empty words", `[{"broker": "rabbitmq", "destination": "a..b"}]`, nil},
		{"ok/nats gt alone", `[{"broker": "nats", "destination": ">"}]`, nil},
		{"ok/nats hash is a literal", `[{"broker": "nats", "destination": "a.#"}]`, nil},
		{"ok/nulls are absent", `[{"broker": "nats", "destination": "a", "name": null, "operations": null, "scopes": null, "grant_types": null, "audience": null, "authorization_details": null}]`, nil},
	}
	ref := newReference(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := mustArray(t, tt.table)
			c := Compile(table)
			if !slices.Equal(c.Broken(), tt.broken) {
				t.Fatalf("Broken() = %v, want %v", c.Broken(), tt.broken)
			}
			if _, ok := c.Match("nats", "publish", "a"); ok && len(tt.broken) > 0 {
				t.Fatal("a broken table matched a message")
			}
			want := ref.answers(t, table, [][3]string{{"nats", "publish", "a"}})
			if got := c.answers([][3]string{{"nats", "publish", "a"}}); got[0].String() != want[0].String() {
				t.Fatalf("compiled %s, reference %s", got[0], want[0])
			}
		})
	}
}

// Pieces the generated tables and messages are made of: tokens of every
// kind for every broker.
var (
	genBrokers     = []string{"nats", "rabbitmq", "kafka"}
	tableTokens    = []string{"a", "b", "orders", "*", ">", "#", "", "a*", "x.y", "é"}
	queryTokens    = []string{"a", "b", "orders", "*", ">", "#", "", "c", "é", "a*"}
	genOperations  = []any{nil, []any{"publish"}, []any{"subscribe", "consume"}, []any{}, []any{"connect"}, []any{"Publish"}}
	queryOperation = []string{"publish", "subscribe", "consume", "configure", "connect", ""}
)

func genDestination(r *rand.Rand, tokens []string) string {
	n := 1 + r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = tokens[r.IntN(len(tokens))]
	}
	return strings.Join(parts, ".")
}

func genTable(r *rand.Rand, n int, broken bool) []any {
	table := make([]any, 0, n)
	for len(table) < n {
		broker := genBrokers[r.IntN(len(genBrokers))]
		dest := genDestination(r, tableTokens)
		if SyntaxError(broker, dest) != nil && !broken {
			continue
		}
		d := map[string]any{"name": fmt.Sprint(len(table)), "broker": broker, "destination": dest}
		if ops := genOperations[r.IntN(len(genOperations))]; ops != nil {
			d["operations"] = ops
		}
		table = append(table, d)
	}
	return table
}

// The compiled table answers every message as the Rego reference does,
// over generated tables of every kind of destination and messages of every
// kind.
func TestDestinationMatcherAgreesWithRego(t *testing.T) {
	ref := newReference(t)
	r := rand.New(rand.NewPCG(3, 4))
	matched := 0
	for round := range 40 {
		table := genTable(r, 1+r.IntN(30), round%8 == 7)
		v, err := ast.InterfaceToValue(table)
		if err != nil {
			t.Fatal(err)
		}
		arr := v.(*ast.Array)
		msgs := make([][3]string, 0, 200)
		for range 150 {
			msgs = append(msgs, [3]string{genBrokers[r.IntN(len(genBrokers))], queryOperation[r.IntN(len(queryOperation))], genDestination(r, queryTokens)})
		}
		// Messages for the destinations' own names, so that most match.
		for _, x := range table {
			d := x.(map[string]any)
			msgs = append(msgs, [3]string{d["broker"].(string), "publish", strings.NewReplacer("*", "z", ">", "z.z", "#", "").Replace(d["destination"].(string))})
		}
		want := ref.answers(t, arr, msgs)
		got := Compile(arr).answers(msgs)
		for i := range msgs {
			if got[i].String() != want[i].String() {
				js, _ := json.Marshal(table)
				t.Fatalf("table %s, message %q: compiled %s, reference %s", js, msgs[i], got[i], want[i])
			}
			if want[i].index >= 0 {
				matched++
			}
		}
	}
	if matched < 500 {
		t.Fatalf("only %d messages matched a destination: the generated tables test little", matched)
	}
}

// benchTable is n destinations of every kind, the last one matching a
// publish to nats orders.eu.created.
func benchTable(tb testing.TB, n int) *ast.Array {
	tb.Helper()
	table := make([]any, 0, n)
	for i := range n - 1 {
		var d map[string]any
		switch i % 6 {
		case 0:
			d = map[string]any{"broker": "nats", "destination": fmt.Sprintf("svc%d.orders.created", i)}
		case 1:
			d = map[string]any{"broker": "nats", "destination": fmt.Sprintf("orders.*.svc%d", i), "operations": []any{"subscribe"}}
		case 2:
			d = map[string]any{"broker": "nats", "destination": fmt.Sprintf("orders.eu.x%d.>", i)}
		case 3:
			d = map[string]any{"broker": "rabbitmq", "destination": fmt.Sprintf("*.svc%d.#", i)}
		case 4:
			d = map[string]any{"broker": "rabbitmq", "destination": fmt.Sprintf("exchange-%d", i)}
		case 5:
			d = map[string]any{"broker": "kafka", "destination": fmt.Sprintf("topic-%d.*", i)}
		}
		table = append(table, d)
	}
	table = append(table, map[string]any{"broker": "nats", "destination": "orders.*.created", "operations": []any{"publish"}})
	v, err := ast.InterfaceToValue(table)
	if err != nil {
		tb.Fatal(err)
	}
	return v.(*ast.Array)
}

// BenchmarkCompile measures compiling a table of n destinations.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("destinations=%d", n), func(b *testing.B) {
			arr := benchTable(b, n)
			b.ReportAllocs()
			for b.Loop() {
				Compile(arr)
			}
		})
	}
}

// BenchmarkMatch measures a look-up in a table of n destinations for a
// message that the last destination matches.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("destinations=%d", n), func(b *testing.B) {
			c := Compile(benchTable(b, n))
			b.ReportAllocs()
			for b.Loop() {
				if i, ok := c.Match("nats", "publish", "orders.eu.created"); !ok || i != n-1 {
					b.Fatalf("matched %d %v", i, ok)
				}
			}
		})
	}
}
