package route

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

// referenceFile is the route matching written in Rego: what the tests
// compare the compiled table with.
const referenceFile = "../../rego/lib/route_reference_test.rego"

// reference evaluates the Rego reference for every request of a table.
type reference struct{ pq rego.PreparedEvalQuery }

func newReference(tb testing.TB) *reference {
	tb.Helper()
	src, err := os.ReadFile(referenceFile)
	if err != nil {
		tb.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query(`x := [[i, a] | some i, q in input.requests; a := data.tokenguard.lib.route_reference.route(input.routes, q[0], q[1], q[2])]`),
		rego.Module(referenceFile, string(src)),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return &reference{pq: pq}
}

// answer is what a table answers for one request: the broken routes, or
// the index of the route that matches (-1: none).
type answer struct {
	broken []int
	index  int
}

func (a answer) String() string {
	if a.broken != nil {
		return fmt.Sprintf("broken %v", a.broken)
	}
	return fmt.Sprintf("route %d", a.index)
}

// answers are the reference's answers to requests ([method, host, path]).
func (r *reference) answers(tb testing.TB, routes *ast.Array, requests [][3]string) ([]answer, error) {
	tb.Helper()
	reqs := make([]*ast.Term, len(requests))
	for i, q := range requests {
		reqs[i] = ast.ArrayTerm(ast.StringTerm(q[0]), ast.StringTerm(q[1]), ast.StringTerm(q[2]))
	}
	input := ast.NewObject(
		ast.Item(ast.StringTerm("routes"), ast.NewTerm(routes)),
		ast.Item(ast.StringTerm("requests"), ast.ArrayTerm(reqs...)),
	)
	rs, err := r.pq.Eval(context.Background(), rego.EvalParsedInput(input))
	if err != nil {
		return nil, err
	}
	out := make([]answer, len(requests))
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
	return out, nil
}

// answers are the compiled table's answers to requests.
func (t *Table) answers(requests [][3]string) ([]answer, error) {
	out := make([]answer, len(requests))
	for i, q := range requests {
		if b := t.Broken(); len(b) > 0 {
			out[i].broken = slices.Clone(b)
			continue
		}
		k, ok, err := t.Match(q[0], q[1], q[2])
		if err != nil {
			return nil, err
		}
		out[i].index = -1
		if ok {
			out[i].index = k
		}
	}
	return out, nil
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
		{"name": "one account", "path": "/v1/accounts/42", "methods": ["GET"]},
		{"name": "accounts", "path": "/v1/accounts/*"},
		{"name": "eu", "path": "/v1/**", "host": "*.Example.com", "methods": ["post"]},
		{"name": "admin", "path": "/admin/**", "host": "ADMIN.example.com"},
		{"name": "files", "path": "/files/*.txt"},
		{"name": "anything", "path": "/**", "methods": "*"}
	]`)
	tests := []struct {
		name               string
		method, host, path string
		want               int
	}{
		{"ok/exact path and method", "GET", "api.example.com", "/v1/accounts/42", 0},
		{"ok/method compared in upper case", "get", "api.example.com", "/v1/accounts/42", 0},
		{"ok/a star segment after an exact route of another method", "DELETE", "h", "/v1/accounts/42", 1},
		{"ok/a star segment needs a character, a prefix catches the rest", "GET", "h", "/v1/accounts/", 5},
		{"ok/wildcard host, one label, case-insensitive", "POST", "EU.example.COM", "/v1/x", 2},
		{"ok/wildcard host never matches two labels", "POST", "a.b.example.com", "/v1/x", 5},
		{"ok/wildcard host never matches the bare domain", "POST", "example.com", "/v1/x", 5},
		{"ok/exact host", "GET", "admin.example.com", "/admin/users/1", 3},
		{"ok/exact host of another name falls through", "GET", "admin.example.com.evil", "/admin/users/1", 5},
		{"ok/a star within a segment", "GET", "h", "/files/a.txt", 4},
		{"ok/a star within a segment stays in it", "GET", "h", "/files/a/b.txt", 5},
		{"fail/a dot segment never matches", "GET", "h", "/v1/../admin", -1},
		{"fail/a dot segment at the end never matches", "GET", "h", "/v1/.", -1},
		{"fail/a path without a slash never matches", "GET", "h", "v1/accounts/42", -1},
		{"fail/an empty path never matches", "GET", "h", "", -1},
	}
	c, err := Compile(table)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := c.Match(tt.method, tt.host, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				got = -1
			}
			if got != tt.want {
				t.Fatalf("Match(%q, %q, %q) = %d, want %d", tt.method, tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestCompileListsBrokenRoutesAndMatchesNothing(t *testing.T) {
	tests := []struct {
		name   string
		table  string
		broken []int
	}{
		{"fail/a path with other glob syntax", `[{"path": "/**"}, {"path": "/v1/[a-z]"}]`, []int{1}},
		{"fail/a route that is not an object", `[{"path": "/**"}, "not a route", 3]`, []int{1, 2}},
		{"fail/no path", `[{"methods": ["GET"]}]`, []int{0}},
		{"fail/methods a string other than star", `[{"path": "/x", "methods": "GET"}]`, []int{0}},
		{"fail/a method that is not a string", `[{"path": "/x", "methods": ["GET", 1]}]`, []int{0}},
		{"fail/scopes a string", `[{"path": "/x", "scopes": "a"}]`, []int{0}},
		{"fail/a host that is not a string", `[{"path": "/x", "host": 1}]`, []int{0}},
		{"fail/details without a type", `[{"path": "/x", "authorization_details": {"actions": ["read"]}}]`, []int{0}},
		{"fail/details with an empty type", `[{"path": "/x", "authorization_details": {"type": ""}}]`, []int{0}},
		{"fail/path_parameters not a boolean", `[{"path": "/x", "path_parameters": "yes"}]`, []int{0}},
		{"ok/nulls are absent", `[{"path": "/x", "host": null, "methods": null, "scopes": null, "audience": null, "path_parameters": null, "authorization_details": null}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(mustArray(t, tt.table))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Broken(), tt.broken) {
				t.Fatalf("Broken() = %v, want %v", c.Broken(), tt.broken)
			}
			if _, ok, _ := c.Match("GET", "h", "/x"); ok && len(tt.broken) > 0 {
				t.Fatal("a broken table matched a request")
			}
		})
	}
}

// Pieces the generated tables and requests are made of: segments the tree
// decides and ones the glob does, hosts of every kind, method lists.
var (
	routeSegments   = []string{"v1", "a", "B", "x.y", "42", "*", "**", "a*", "*b", "***", "a**", "%2F", ";p"}
	requestSegments = []string{"v1", "a", "B", "b", "x.y", "42", "", "ab", "aXb", "*", "**", ".", "..", "%2F", ";p", "é"}
	routeHosts      = []any{nil, "*", "api.example.com", "API.Example.com", "*.example.com", "*.EXAMPLE.com", "a.b.example.com", "", "*."}
	requestHosts    = []string{"api.example.com", "API.EXAMPLE.COM", "a.example.com", "example.com", "a.b.example.com", "", "*.example.com", "x", "a."}
	routeMethods    = []any{nil, "*", []any{"GET"}, []any{"get", "POST"}, []any{"*"}, []any{}, []any{""}, []any{"DELETE", "*"}}
	requestMethods  = []string{"GET", "get", "POST", "DELETE", ""}
)

func genPath(r *rand.Rand, segs []string) string {
	n := r.IntN(4)
	parts := make([]string, n+1)
	for i := range n {
		parts[i+1] = segs[r.IntN(len(segs))]
	}
	if n == 0 {
		return "/"
	}
	return strings.Join(parts, "/")
}

func genTable(r *rand.Rand, n int, broken bool) []any {
	routes := make([]any, n)
	for i := range routes {
		route := map[string]any{"name": fmt.Sprint(i), "path": genPath(r, routeSegments)}
		if h := routeHosts[r.IntN(len(routeHosts))]; h != nil {
			route["host"] = h
		}
		if m := routeMethods[r.IntN(len(routeMethods))]; m != nil {
			route["methods"] = m
		}
		routes[i] = route
	}
	if broken {
		bad := []any{"x", map[string]any{"path": "/a/?"}, map[string]any{"path": "/a", "scopes": "s"}, map[string]any{"path": 1}}
		routes[r.IntN(n)] = bad[r.IntN(len(bad))]
	}
	return routes
}

func genRequests(r *rand.Rand, n int) [][3]string {
	reqs := make([][3]string, n)
	for i := range reqs {
		reqs[i] = [3]string{requestMethods[r.IntN(len(requestMethods))], requestHosts[r.IntN(len(requestHosts))], genPath(r, requestSegments)}
	}
	return reqs
}

// The compiled table answers every request as the Rego reference does,
// over generated tables of every kind of route and requests of every kind.
func TestRouteMatcherAgreesWithRego(t *testing.T) {
	ref := newReference(t)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		routes := genTable(r, 1+r.IntN(40), round%8 == 7)
		v, err := ast.InterfaceToValue(routes)
		if err != nil {
			t.Fatal(err)
		}
		arr := v.(*ast.Array)
		reqs := genRequests(r, 150)
		// Requests for the routes' own paths, so that most routes match some.
		for _, x := range routes {
			if m, ok := x.(map[string]any); ok {
				if p, ok := m["path"].(string); ok {
					reqs = append(reqs, [3]string{"GET", "a.example.com", strings.ReplaceAll(p, "*", "z")})
				}
			}
		}
		want, err := ref.answers(t, arr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Compile(arr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.answers(reqs)
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for i := range reqs {
			if got[i].String() != want[i].String() {
				js, _ := json.Marshal(routes)
				t.Fatalf("table %s, request %q: compiled %s, reference %s", js, reqs[i], got[i], want[i])
			}
			if want[i].index >= 0 {
				matched++
			}
		}
		if matched == 0 && round%8 != 7 {
			t.Logf("round %d: no request matched a route", round)
		}
	}
}

// benchTable is n routes of every kind, the last one matching GET
// api.example.com/v1/accounts/42.
func benchTable(tb testing.TB, n int) *ast.Array {
	tb.Helper()
	routes := make([]any, 0, n)
	for i := range n - 1 {
		var r map[string]any
		switch i % 6 {
		case 0:
			r = map[string]any{"path": fmt.Sprintf("/v1/svc%d/items/list", i)}
		case 1:
			r = map[string]any{"path": fmt.Sprintf("/v1/svc%d/items/*", i), "methods": []any{"GET", "PUT"}}
		case 2:
			r = map[string]any{"path": fmt.Sprintf("/v2/svc%d/**", i)}
		case 3:
			r = map[string]any{"path": "/v1/**", "host": fmt.Sprintf("h%d.example.com", i)}
		case 4:
			r = map[string]any{"path": "/v1/accounts/*", "host": fmt.Sprintf("*.t%d.example.com", i)}
		case 5:
			r = map[string]any{"path": fmt.Sprintf("/v1/a*/op%d/**/x", i), "methods": []any{"DELETE"}}
		}
		routes = append(routes, r)
	}
	routes = append(routes, map[string]any{"path": "/v1/accounts/*", "methods": []any{"GET"}, "host": "api.example.com"})
	v, err := ast.InterfaceToValue(routes)
	if err != nil {
		tb.Fatal(err)
	}
	return v.(*ast.Array)
}

// BenchmarkCompile measures compiling a table of n routes (B/op: the
// compiled table's size, about).
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			arr := benchTable(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(arr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatch measures a look-up in a table of n routes for a request
// that the last route matches.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			c, err := Compile(benchTable(b, n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if i, ok, _ := c.Match("GET", "api.example.com", "/v1/accounts/42"); !ok || i != n-1 {
					b.Fatalf("matched %d %v", i, ok)
				}
			}
		})
	}
}

// TestHeadIsGuardedByTheGetRoute: servers answer HEAD with their GET
// handler (net/http, Express, Spring, Rails), so a route that lists GET
// guards HEAD too: a HEAD request never falls past it to a broader route
// (or to no route, where unknown routes are allowed). Only HEAD is read
// as GET; the Rego reference agrees.
func TestHeadIsGuardedByTheGetRoute(t *testing.T) {
	table := mustArray(t, `[
		{"name": "head only", "path": "/status", "methods": ["HEAD"]},
		{"name": "admin", "path": "/admin/**", "methods": ["get"]},
		{"name": "status", "path": "/status", "methods": ["GET"]},
		{"name": "public", "path": "/**", "methods": ["HEAD", "OPTIONS", "POST"]}
	]`)
	tests := []struct {
		name         string
		method, path string
		want         int
	}{
		{"fail/HEAD on a GET route is guarded by it", "HEAD", "/admin/users", 1},
		{"fail/head in lower case too", "head", "/admin/users", 1},
		{"ok/GET on the GET route", "GET", "/admin/users", 1},
		{"ok/a route listing HEAD before a GET route applies", "HEAD", "/status", 0},
		{"ok/HEAD elsewhere takes its own route", "HEAD", "/public", 3},
		{"ok/OPTIONS is not read as GET", "OPTIONS", "/admin/users", 3},
		{"ok/POST is not read as GET", "POST", "/admin/users", 3},
		{"ok/GET is not read as HEAD", "GET", "/public", -1},
	}
	c, err := Compile(table)
	if err != nil {
		t.Fatal(err)
	}
	ref := newReference(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := c.Match(tt.method, "api.example.com", tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				got = -1
			}
			if got != tt.want {
				t.Errorf("Match(%q, %q) = %d, want %d", tt.method, tt.path, got, tt.want)
			}
			want, err := ref.answers(t, table, [][3]string{{tt.method, "api.example.com", tt.path}})
			if err != nil {
				t.Fatal(err)
			}
			if want[0].index != tt.want {
				t.Errorf("the Rego reference answers %s, want route %d", want[0], tt.want)
			}
		})
	}
}

// TestRouteHostsLoseTheRootDot: request hosts lose the DNS root's trailing
// dot when normalised (api.example.com. is api.example.com to nginx), and
// so do route hosts, so that a route written with one still matches; the
// Rego reference agrees.
func TestRouteHostsLoseTheRootDot(t *testing.T) {
	table := mustArray(t, `[
		{"name": "admin", "path": "/**", "host": "Admin.Example.com."},
		{"name": "eu", "path": "/**", "host": "*.eu.example.com."},
		{"name": "dot", "path": "/dot", "host": "."},
		{"name": "star dot", "path": "/star", "host": "*."},
		{"name": "anything", "path": "/**"}
	]`)
	tests := []struct {
		name, host, path string
		want             int
	}{
		{"ok/a route host with the root's dot matches the host", "admin.example.com", "/x", 0},
		{"ok/a wildcard route host with the root's dot matches a label", "a.eu.example.com", "/x", 1},
		{"ok/a wildcard route host still needs its one label", "eu.example.com", "/x", 4},
		{"ok/another host falls through", "api.example.com", "/x", 4},
		{"ok/a route host that is only a dot stays one", "h", "/dot", 4},
		{"ok/a star and a dot is no host", "h", "/star", 4},
	}
	c, err := Compile(table)
	if err != nil {
		t.Fatal(err)
	}
	ref := newReference(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := c.Match("GET", tt.host, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				got = -1
			}
			if got != tt.want {
				t.Errorf("Match(%q, %q) = %d, want %d", tt.host, tt.path, got, tt.want)
			}
			want, err := ref.answers(t, table, [][3]string{{"GET", tt.host, tt.path}})
			if err != nil {
				t.Fatal(err)
			}
			if want[0].index != tt.want {
				t.Errorf("the Rego reference answers %s, want route %d", want[0], tt.want)
			}
		})
	}
}
