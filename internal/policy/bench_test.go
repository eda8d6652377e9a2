package policy

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/store"
)

// BenchmarkEval measures one evaluation of the shipped policy for an
// allowed bearer-token request, with the pdp.* built-ins reading a real
// bbolt store: the cost of a decision that cannot be reused; fold=off
// evaluates every rule on every request (see fold.go); routes=N puts N-1
// routes before the one the request matches (routes_test.go).
func BenchmarkEval(b *testing.B) {
	b.Run("fold=on", func(b *testing.B) { benchmarkEval(b, false, 1) })
	b.Run("fold=off", func(b *testing.B) { benchmarkEval(b, true, 1) })
	for _, n := range []int{1, 1000, 10000} {
		b.Run("routes="+strconv.Itoa(n), func(b *testing.B) { benchmarkEval(b, false, n) })
	}
	b.Run("keyed=10000", func(b *testing.B) { benchmarkEval(b, false, -10000) })
}

func benchmarkEval(b *testing.B, noFold bool, routes int) {
	set := shippedPolicy(b)
	withRoutes(b, set, routes)
	e := NewEngine(nil)
	e.noFold = noFold
	if err := e.Activate(context.Background(), set); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	input := benchInput(now)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, _, err := e.Eval(ctx, input, now)
		if err != nil || !res.Allow {
			b.Fatalf("eval: %v %+v", err, res)
		}
	}
}

// benchInput is an allowed bearer-token request at now.
func benchInput(now time.Time) ast.Value {
	return ast.MustParseTerm(`{
		"context": {}, "dpop": {"present": false, "valid": false}, "environment": "prod", "now": ` + strconv.FormatInt(now.UnixNano(), 10) + `,
		"request": {"headers": {"user-agent": ["bench/1"]}, "host": "api.example.com", "method": "GET", "path": "/v1/accounts/42",
			"port": 443, "query": {}, "remote_ip": "203.0.113.7", "scheme": "https", "url": "https://api.example.com/v1/accounts/42"},
		"token": {"bound": {"method": "none"}, "hash": "h4sh", "issuer": "https://as.example.com", "present": true, "scheme": "bearer",
			"source": "jwt", "valid": true, "claims": {"aud": "https://api.example.com", "client_id": "web-app",
			"exp": ` + strconv.FormatInt(now.Add(5*time.Minute).Unix(), 10) + `, "iat": ` + strconv.FormatInt(now.Unix(), 10) + `,
			"iss": "https://as.example.com", "jti": "j1", "scope": "accounts:read", "sub": "alice"}}}`).Value
}

// shippedPolicy loads the shipped policy (rego/), with the pdp.* built-ins
// reading a real bbolt store until tb ends.
func shippedPolicy(tb testing.TB) *Set {
	tb.Helper()
	st, err := store.OpenBolt(tb.TempDir(), store.BoltOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	builtins.SetStore(st)
	tb.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})
	set, err := LoadDir("../../rego", Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return set
}
