package policy

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestFoldedShippedPolicyDecidesAlike evaluates the shipped policy folded and
// unfolded, with its data and with broken or changed settings, for allowed
// and denied requests: every answer must be the same.
func TestFoldedShippedPolicyDecidesAlike(t *testing.T) {
	shipped := shippedPolicy(t)
	pdp := func(set *Set) map[string]any { return set.Data["pdp"].(map[string]any) }
	variants := map[string]func(map[string]any){
		"shipped data":               func(map[string]any) {},
		"routes not an array":        func(d map[string]any) { d["routes"] = "all" },
		"a malformed route":          func(d map[string]any) { d["routes"] = []any{map[string]any{"path": 7}} },
		"no routes, unknown allowed": func(d map[string]any) { delete(d, "routes"); d["unknown_routes"] = "allow" },
		"a malformed lifetime": func(d map[string]any) {
			d["lifetimes"] = map[string]any{"default": map[string]any{"max_age": "forever"}}
		},
		"short lifetimes": func(d map[string]any) {
			d["lifetimes"] = map[string]any{"default": map[string]any{"max_lifetime": "1m", "max_age": "1s"}}
		},
		"no environments":               func(d map[string]any) { delete(d, "environments") },
		"grant types not an array":      func(d map[string]any) { d["grant_types"] = map[string]any{"allowed": "all"} },
		"another grant type claim name": func(d map[string]any) { d["grant_type_claim"] = "grant" },
		"no policy data":                func(d map[string]any) { clear(d) },
	}
	now := time.Now()
	claims := func(extra string) string {
		return `{"aud": "https://api.example.com", "client_id": "web-app", "exp": ` + strconv.FormatInt(now.Add(5*time.Minute).Unix(), 10) +
			`, "iat": ` + strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + `, "iss": "https://as.example.com", "jti": "j1", "sub": "alice"` + extra + `}`
	}
	request := func(method, path string) string {
		return `{"headers": {"user-agent": ["t/1"]}, "host": "api.example.com", "method": "` + method + `", "path": "` + path +
			`", "port": 443, "query": {}, "remote_ip": "203.0.113.7", "scheme": "https", "url": "https://api.example.com` + path + `"}`
	}
	input := func(req, token string) ast.Value {
		return ast.MustParseTerm(`{"context": {}, "dpop": {"present": false, "valid": false}, "environment": "prod", "now": ` +
			strconv.FormatInt(now.UnixNano(), 10) + `, "request": ` + req + `, "token": ` + token + `}`).Value
	}
	bearer := func(c string) string {
		return `{"bound": {"method": "none"}, "hash": "h4sh", "issuer": "https://as.example.com", "present": true, "scheme": "bearer", "source": "jwt", "valid": true, "claims": ` + c + `}`
	}
	inputs := map[string]ast.Value{
		"allowed read":         input(request("GET", "/v1/accounts/42"), bearer(claims(`, "scope": "accounts:read"`))),
		"scope missing":        input(request("GET", "/v1/accounts/42"), bearer(claims(`, "scope": "profile"`))),
		"admin role":           input(request("GET", "/v1/accounts/42"), bearer(claims(`, "scope": "accounts:read accounts:write", "roles": ["admin"]`))),
		"unknown route":        input(request("DELETE", "/v2/things"), bearer(claims(`, "scope": "accounts:read"`))),
		"client credentials":   input(request("GET", "/v1/accounts/42"), bearer(`{"aud": "https://api.example.com", "client_id": "payments-job", "sub": "payments-job", "scope": "accounts:read", "iat": 1, "exp": 2, "iss": "https://as.example.com"}`)),
		"deprecated grant":     input(request("GET", "/v1/accounts/42"), bearer(claims(`, "scope": "accounts:read", "gty": "password"`))),
		"no token":             input(request("GET", "/v1/accounts/42"), `{"present": false, "valid": false, "claims": {}, "error": {"code": "token_missing", "message": "none"}}`),
		"token not verified":   input(request("GET", "/v1/accounts/42"), `{"present": true, "valid": false, "claims": {}, "scheme": "bearer", "error": {"code": "token_expired", "message": "expired"}}`),
		"claims of odd shapes": input(request("GET", "/v1/accounts/42"), bearer(`{"aud": ["x", "https://api.example.com"], "client_id": 7, "scope": "accounts:read", "scp": "x", "iat": "1", "exp": 2, "iss": "https://as.example.com", "act": {"sub": "svc"}}`)),
	}
	ctx := context.Background()
	for vname, vary := range variants {
		// Without data.tokenguard.config_errors, which refuses the broken
		// variants at activation: the guardrails' own checks, on each
		// request, must still deny with policy_error alike.
		set := &Set{Modules: withoutValidation(shipped.Modules), Data: deepCopy(shipped.Data), Revision: vname, Source: "test"}
		vary(pdp(set))
		folded, plain := NewEngine(nil), NewEngine(nil)
		folded.noShippedValidator, plain.noShippedValidator = true, true
		plain.noFold = true
		if err := folded.Activate(ctx, set); err != nil {
			t.Fatalf("%s: %v", vname, err)
		}
		if err := plain.Activate(ctx, set); err != nil {
			t.Fatalf("%s: %v", vname, err)
		}
		if info, _ := folded.Active(); info.FoldedRules == 0 {
			t.Errorf("%s: no rule folded", vname)
		}
		if info, _ := plain.Active(); info.FoldedRules != 0 {
			t.Errorf("%s: %d rules folded with folding off", vname, info.FoldedRules)
		}
		for iname, in := range inputs {
			want, _, werr := plain.Eval(ctx, in, now)
			got, _, gerr := folded.Eval(ctx, in, now)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s:\nfolded   %+v %v\nunfolded %+v %v", vname, iname, got, gerr, want, werr)
			}
		}
	}
}

// deepCopy copies a JSON document.
func deepCopy(v map[string]any) map[string]any {
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, v := range x {
				out[k] = walk(v)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, v := range x {
				out[i] = walk(v)
			}
			return out
		}
		return x
	}
	return walk(v).(map[string]any)
}

// withoutValidation drops the module that defines data.tokenguard.config_errors.
func withoutValidation(modules []*ast.Module) []*ast.Module {
	var out []*ast.Module
	for _, m := range modules {
		if !m.Package.Path.Equal(ast.MustParseRef("data.tokenguard")) {
			out = append(out, m)
		}
	}
	return out
}
