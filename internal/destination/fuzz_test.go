package destination

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Any destination table (JSON) and message: the compiled table answers as
// the Rego reference does.
func FuzzDestinationMatch(f *testing.F) {
	for _, seed := range []struct{ table, broker, operation, destination string }{
		{`[{"broker": "nats", "destination": "orders.*", "operations": ["publish"]}, {"broker": "nats", "destination": ">"}]`, "nats", "publish", "orders.created"},
		{`[{"broker": "nats", "destination": "orders.>"}]`, "nats", "subscribe", "orders.>"},
		{`[{"broker": "rabbitmq", "destination": "#.a.#.*"}, {"broker": "rabbitmq", "destination": "orders"}]`, "rabbitmq", "publish", "x.a..#"},
		{`[{"broker": "kafka", "destination": "orders.*"}, {"broker": "kafka", "destination": "payments"}]`, "kafka", "consume", "orders."},
		{`[{"broker": "nats", "destination": "a..b"}, 1]`, "nats", "publish", "a"},
		{`[{"broker": "nats", "destination": "*.*"}]`, "nats", "publish", "a.>.b"},
	} {
		f.Add(seed.table, seed.broker, seed.operation, seed.destination)
	}
	ref := newReference(f)
	f.Fuzz(func(t *testing.T, table, broker, operation, destination string) {
		if len(table) > 4096 || len(broker)+len(operation)+len(destination) > 2048 {
			return
		}
		var v any
		if json.Unmarshal([]byte(table), &v) != nil {
			return
		}
		entries, ok := v.([]any)
		if !ok || len(entries) > 32 {
			return
		}
		val, err := ast.InterfaceToValue(entries)
		if err != nil {
			return
		}
		arr := val.(*ast.Array)
		msgs := [][3]string{{broker, operation, destination}}
		want := ref.answers(t, arr, msgs)
		got := Compile(arr).answers(msgs)
		if got[0].String() != want[0].String() {
			t.Fatalf("table %s, message %q: compiled %s, reference %s", table, msgs[0], got[0], want[0])
		}
	})
}
