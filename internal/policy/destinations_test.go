package policy

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/builtins"
)

// messageInput is alice's subscription to nats orders.created with scope
// accounts:read, as Go builds the input of a message.
func messageInput(now time.Time, operation, dest string) ast.Value {
	return ast.MustParseTerm(`{
		"context": {}, "dpop": {"present": false, "valid": false}, "environment": "prod", "now": ` + strconv.FormatInt(now.UnixNano(), 10) + `,
		"message": {"broker": "nats", "operation": "` + operation + `", "destination": "` + dest + `", "vhost": "", "remote_ip": "203.0.113.7"},
		"token": {"bound": {"method": "none"}, "hash": "h4sh", "issuer": "https://as.example.com", "present": true, "scheme": "bearer",
			"source": "jwt", "valid": true, "claims": {"aud": "https://api.example.com", "client_id": "web-app",
			"exp": ` + strconv.FormatInt(now.Add(5*time.Minute).Unix(), 10) + `, "iat": ` + strconv.FormatInt(now.Unix(), 10) + `,
			"iss": "https://as.example.com", "jti": "j1", "scope": "accounts:read", "sub": "alice"}}}`).Value
}

// withDestinations sets data.pdp.destinations of set.
func withDestinations(tb testing.TB, set *Set, destinations []any) {
	tb.Helper()
	pdp, ok := set.Data["pdp"].(map[string]any)
	if !ok {
		tb.Fatal("the policy set has no data.pdp")
	}
	pdp["destinations"] = destinations
}

// The shipped policy decides messages with the pdp.destination built-in:
// the table is compiled once for a version's decisions, and the settings
// list its destinations.
func TestMessagesAreDecidedWithTheCompiledDestinationTable(t *testing.T) {
	set := shippedPolicy(t)
	withDestinations(t, set, []any{
		map[string]any{"name": "orders", "broker": "nats", "destination": "orders.>", "operations": []any{"subscribe"},
			"audience": "https://api.example.com", "scopes": []any{"accounts:read"}},
		map[string]any{"name": "admin", "broker": "nats", "destination": "admin.*", "scopes": []any{"accounts:write"}},
	})
	e := NewEngine(nil)
	ctx := context.Background()
	if err := e.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	before := builtins.DestinationCompiles()
	now := time.Now()
	tests := []struct {
		name, operation, dest string
		allow                 bool
		code                  string
	}{
		{"ok/a subscription the destination and the scope allow", "subscribe", "orders.created", true, ""},
		{"ok/a subscription with a wildcard it covers", "subscribe", "orders.>", true, ""},
		{"fail/an operation the destination does not list", "publish", "orders.created", false, "destination_unknown"},
		{"fail/a scope the token lacks", "publish", "admin.users", false, "scope_insufficient"},
		{"fail/no destination", "subscribe", "stock.x", false, "destination_unknown"},
		{"ok/a connect is not matched", "connect", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := e.Eval(ctx, messageInput(now, tt.operation, tt.dest), now)
			if err != nil {
				t.Fatal(err)
			}
			if res.Allow != tt.allow || !tt.allow && (len(res.Reasons) == 0 || res.Reasons[0].Code != tt.code) {
				t.Fatalf("allow %v, reasons %+v; want allow %v, %s", res.Allow, res.Reasons, tt.allow, tt.code)
			}
		})
	}
	if got := builtins.DestinationCompiles() - before; got > 1 {
		t.Fatalf("%d destination tables were compiled for one version, want at most 1", got)
	}
	want := []Destination{
		{Name: "orders", Broker: "nats", Destination: "orders.>", Operations: []string{"subscribe"}},
		{Name: "admin", Broker: "nats", Destination: "admin.*", Operations: []string{"publish", "subscribe", "consume", "configure"}},
	}
	if got := e.Settings().Destinations; len(got) != 2 || got[0].Destination != want[0].Destination || got[1].Operations[3] != "configure" {
		t.Fatalf("Settings().Destinations = %+v, want %+v", got, want)
	}
}
