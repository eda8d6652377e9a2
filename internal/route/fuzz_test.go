package route

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Any route table (JSON) and request: the compiled table answers as the
// Rego reference does, or both fail.
func FuzzRouteMatch(f *testing.F) {
	for _, seed := range []struct{ table, method, host, path string }{
		{`[{"path": "/v1/accounts/*", "methods": ["GET"], "host": "api.example.com"}, {"path": "/**"}]`, "GET", "api.example.com", "/v1/accounts/42"},
		{`[{"path": "/v1/*/x/**"}, {"path": "/a*b/**", "host": "*.example.com"}]`, "POST", "eu.example.com", "/aXb/c/d"},
		{`[{"path": "/x", "methods": "*"}, {"path": "/x/"}]`, "get", "", "/x/"},
		{`[{"path": "/***"}, {"path": "/*/*/*"}]`, "", "h", "/a//b"},
		{`[{"path": "/a"}, {"path": 1}]`, "GET", "h", "/a"},
		{`[{"path": "/v1/**"}]`, "GET", "h", "/v1/../x"},
	} {
		f.Add(seed.table, seed.method, seed.host, seed.path)
	}
	ref := newReference(f)
	f.Fuzz(func(t *testing.T, table, method, host, path string) {
		if len(table) > 4096 || len(method)+len(host)+len(path) > 1024 {
			return
		}
		var v any
		if json.Unmarshal([]byte(table), &v) != nil {
			return
		}
		routes, ok := v.([]any)
		if !ok || len(routes) > 32 {
			return
		}
		val, err := ast.InterfaceToValue(routes)
		if err != nil {
			return
		}
		arr := val.(*ast.Array)
		reqs := [][3]string{{method, host, path}}
		want, refErr := ref.answers(t, arr, reqs)
		c, err := Compile(arr)
		if err != nil {
			if refErr == nil {
				t.Fatalf("Compile: %v; the reference answers %s", err, want[0])
			}
			return
		}
		got, err := c.answers(reqs)
		if (err != nil) != (refErr != nil) {
			t.Fatalf("compiled error %v, reference error %v", err, refErr)
		}
		if err == nil && got[0].String() != want[0].String() {
			t.Fatalf("table %s, request %q: compiled %s, reference %s", table, reqs[0], got[0], want[0])
		}
	})
}
