package decisionlog

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// policyMask evaluates mask.rego, the policy the Go mask must match, on a
// policy input.
type policyMask struct {
	query rego.PreparedEvalQuery
}

func newPolicyMask(t testing.TB) *policyMask {
	t.Helper()
	q, err := rego.New(
		rego.Query("data.system.log.mask"),
		rego.Module("mask.rego", string(maskPolicy)),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &policyMask{query: q}
}

// paths are the mask paths the policy gives for an event whose policy
// input is input, sorted.
func (p *policyMask) paths(t testing.TB, input ast.Value) []string {
	t.Helper()
	event := ast.NewObject(ast.Item(ast.StringTerm("input"), ast.NewTerm(input)))
	rs, err := p.query.Eval(context.Background(), rego.EvalParsedInput(event))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if len(rs) == 1 {
		for _, v := range rs[0].Expressions[0].Value.([]any) {
			out = append(out, v.(string))
		}
	}
	slices.Sort(out)
	return out
}

// request builds a policy input from the JSON of its request member.
func request(t testing.TB, js string) ast.Value {
	t.Helper()
	v, err := ast.ValueFromReader(strings.NewReader(`{"request": ` + js + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMaskMatchesThePolicy(t *testing.T) {
	pm := newPolicyMask(t)
	tests := []struct {
		name    string
		request string
	}{
		{"ok/no request headers", `{"method": "GET"}`},
		{"ok/plain headers", `{"headers": {"user-agent": ["curl/8"], "accept": ["*/*"]}}`},
		{"fail/the listed credential headers", `{"headers": {"authorization": ["x"], "proxy-authorization": ["x"], "dpop": ["p"], "cookie": ["c"], "set-cookie": ["c"], "x-tokenguard-gateway": ["g"]}}`},
		{"fail/headers named like a credential", `{"headers": {"x-api-key": ["k"], "x-apikey": ["k"], "x-refresh-token": ["r"], "x-session-id": ["s"], "x-jwt-assertion": ["a"], "x-client-secret": ["s"], "x-password": ["p"], "x-signature": ["s"]}}`},
		{"fail/upper case credential header", `{"headers": {"X-Auth-Token": ["t"], "user-agent": ["u"]}}`},
		{"fail/a credential header that a path cannot name", `{"headers": {"x-token/evil": ["t"], "user-agent": ["curl/8"]}}`},
		{"fail/a credential header with a tilde", `{"headers": {"x-token~1": ["t"]}}`},
		{"ok/an unnameable plain header", `{"headers": {"x-trace/id": ["t"]}}`},
		{"fail/credential query", `{"url": "https://a.example/?access_token=t", "query": {"access_token": ["t"]}}`},
		{"fail/credential query without url", `{"query": {"code": ["c"]}}`},
		{"fail/query parameter ending in sig", `{"query": {"x-sig": ["s"], "page": ["2"]}}`},
		{"fail/query parameter naming a jwt", `{"query": {"id_jwt": ["j"]}}`},
		{"ok/query parameter with sig inside", `{"query": {"sigma": ["s"]}}`},
		{"ok/plain query", `{"url": "https://a.example/?page=2", "query": {"page": ["2"]}}`},
		{"ok/headers as an array", `{"headers": ["authorization"]}`},
		{"ok/headers as a string", `{"headers": "authorization: x"}`},
		{"ok/query as an array", `{"query": ["token"]}`},
		{"fail/everything at once", `{"url": "u", "query": {"api_key": ["k"]}, "headers": {"authorization": ["a"], "x-token%zz": ["t"], "cookie": ["c"]}}`},
		{"fail/a non-ASCII letter that folds to an ASCII one", `{"headers": {"x-api-\u212aey": ["k"]}, "query": {"\u017fession": ["s"]}}`},
		{"fail/every spelling of a credential header", `{"headers": {"x-api_key": ["k"], "x-functions-key": ["k"], "x-pwd": ["p"], "x-sessid": ["s"], "x-bearer": ["b"], "x-sig": ["s"], "user-agent": ["u"]}}`},
		{"fail/headers that repeat a URL", `{"headers": {"referer": ["r"], "referrer": ["r"], "x-envoy-original-path": ["p"], "x-original-url": ["u"], "x-original-uri": ["u"], "content-location": ["l"]}}`},
		{"fail/query api-key with a hyphen", `{"url": "u", "query": {"api-key": ["k"]}}`},
		{"fail/query key alone", `{"url": "u", "query": {"key": ["k"]}}`},
		{"fail/query session id spellings", `{"url": "u", "query": {"PHPSESSID": ["s"]}}`},
		{"fail/query auth and pwd", `{"url": "u", "query": {"auth": ["a"], "pwd": ["p"]}}`},
		{"ok/query keyword", `{"url": "u", "query": {"keyword": ["k"]}}`},
		{"ok/empty header name", `{"headers": {"": ["x"]}}`},
		{"fail/header name with a newline", `{"headers": {"token\n": ["x"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := request(t, tt.request)
			want := pm.paths(t, in)
			got := maskOf(in).paths()
			if !slices.Equal(got, want) {
				t.Errorf("Go mask %v, mask.rego %v", got, want)
			}
		})
	}
	t.Run("ok/headers as a set", func(t *testing.T) {
		in := ast.NewObject(ast.Item(ast.StringTerm("request"), ast.NewTerm(ast.NewObject(
			ast.Item(ast.StringTerm("headers"), ast.SetTerm(ast.StringTerm("authorization"), ast.StringTerm("x-token/1"), ast.IntNumberTerm(3))),
		))))
		if got, want := maskOf(in).paths(), pm.paths(t, in); !slices.Equal(got, want) {
			t.Errorf("Go mask %v, mask.rego %v", got, want)
		}
	})
	t.Run("ok/input not an object", func(t *testing.T) {
		in := ast.String("request")
		if got, want := maskOf(in).paths(), pm.paths(t, in); !slices.Equal(got, want) {
			t.Errorf("Go mask %v, mask.rego %v", got, want)
		}
	})
}

// FuzzMaskMatchesThePolicy: for any header and query names, the Go mask
// erases exactly what mask.rego erases.
func FuzzMaskMatchesThePolicy(f *testing.F) {
	for _, seed := range [][3]string{
		{"authorization", "user-agent", "page"},
		{"x-token/evil", "cookie", "access_token"},
		{"X-Api-Key", "x-sig", "sigma"},
		{"", "\xff", "code\n"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	pm := newPolicyMask(f)
	f.Fuzz(func(t *testing.T, h1, h2, q string) {
		if len(h1)+len(h2)+len(q) > 1024 {
			return
		}
		names := func(ns ...string) map[string]any {
			m := map[string]any{}
			for _, n := range ns {
				m[n] = []any{"v"}
			}
			return m
		}
		v, err := ast.InterfaceToValue(map[string]any{"request": map[string]any{
			"url": "u", "headers": names(h1, h2), "query": names(q),
		}})
		if err != nil {
			t.Skip()
		}
		for _, n := range []string{h1, h2, q} {
			if plainName(n) != plainNameRE.MatchString(n) || credentialHeader(n) != (credentialHeaderNames[n] || credentialHeaderRE.MatchString(n)) ||
				credentialQuery(n) != credentialQueryRE.MatchString(n) {
				t.Fatalf("%q: the ASCII matching and the regexps disagree", n)
			}
		}
		got, want := maskOf(v).paths(), pm.paths(t, v)
		if !slices.Equal(got, want) {
			t.Fatalf("headers %q %q, query %q: Go mask %v, mask.rego %v", h1, h2, q, got, want)
		}
		// What the mask erases is gone from the written input.
		m := maskOf(v)
		var written map[string]any
		if err := json.Unmarshal(appendInput(nil, v, m), &written); err != nil {
			t.Fatalf("the written input is not JSON: %v", err)
		}
		req := written["request"].(map[string]any)
		hs, _ := req["headers"].(map[string]any)
		for _, h := range m.headers {
			if _, ok := hs[h]; ok {
				t.Errorf("header %q was not erased", h)
			}
		}
		if m.allHeaders && req["headers"] != nil {
			t.Error("headers were not erased")
		}
		if m.query && (req["query"] != nil || req["url"] != nil) {
			t.Error("query and url were not erased")
		}
	})
}
