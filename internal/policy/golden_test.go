package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const decisionsGolden = "testdata/decisions.golden.json"

// TestShippedDecisionsUnchanged evaluates the shipped modules for a table of
// requests (allowed and denied, every grant type, DPoP, mTLS, the token
// endpoint, broken claims) with several variants of the policy data, folded
// and unfolded, against a store holding one revoked token and one
// fingerprint: folded and unfolded must decide alike, and every answer (the
// whole decision document, and the nondeterministic built-ins called) must
// be the one in testdata/decisions.golden.json. A change that makes
// decisions faster must leave this file as it is; one that means to change
// a decision rewrites it with -update and shows the difference for review.
func TestShippedDecisionsUnchanged(t *testing.T) {
	shipped := shippedGoldenPolicy(t)
	ctx := context.Background()
	got := map[string]json.RawMessage{}
	for _, vname := range slices.Sorted(maps.Keys(goldenVariants)) {
		set := &Set{Modules: withoutValidation(shipped.Modules), Data: deepCopy(shipped.Data), Revision: vname, Source: "test"}
		goldenVariants[vname](set.Data["pdp"].(map[string]any))
		folded, plain := NewEngine(nil), NewEngine(nil)
		plain.noFold = true
		folded.noShippedValidator, plain.noShippedValidator = true, true
		for _, e := range []*Engine{folded, plain} {
			if err := e.Activate(ctx, set); err != nil {
				t.Fatalf("%s: %v", vname, err)
			}
		}
		for _, rname := range slices.Sorted(maps.Keys(goldenRequests)) {
			in, err := ast.InterfaceToValue(goldenRequests[rname]())
			if err != nil {
				t.Fatal(err)
			}
			f, u := goldenAnswer(t, folded, in), goldenAnswer(t, plain, in)
			if !bytes.Equal(f, u) {
				t.Errorf("%s, %s: folded and unfolded differ:\nfolded   %s\nunfolded %s", vname, rname, f, u)
			}
			got[vname+" | "+rname] = f
		}
	}
	out, err := json.MarshalIndent(got, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	if *update {
		if err := os.WriteFile(decisionsGolden, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(decisionsGolden)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[k]; !ok {
			t.Errorf("%s: in the golden file, no longer evaluated", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("%s: not in the golden file (run with -update)", k)
		case !jsonEqual(w, got[k]):
			t.Errorf("%s:\ngot  %s\nwant %s", k, got[k], w)
		}
	}
}

// goldenNow is the input.now of every golden request: the answers must not
// depend on the clock of the machine running the test.
var goldenNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goldenAnswer is the whole decision document e gives for in, with the
// nondeterministic built-ins it called, or the error, as JSON.
func goldenAnswer(t *testing.T, e *Engine, in ast.Value) json.RawMessage {
	t.Helper()
	v := e.active.Load()
	ndb := map[string]ast.Object{}
	rs, err := v.query.Eval(context.Background(), rego.EvalParsedInput(in), rego.EvalTime(goldenNow),
		rego.EvalGenerateJSON(keepTerm), rego.EvalNDBuiltinCache(ndb))
	answer := map[string]any{}
	switch {
	case err != nil:
		answer["error"] = err.Error()
	case len(rs) == 0:
		answer["error"] = "undefined"
	default:
		d, err := ast.JSON(rs[0].Expressions[0].Value.(*ast.Term).Value)
		if err != nil {
			t.Fatal(err)
		}
		answer["decision"] = d
		// The engine's reading of it: what Go acts on.
		if _, _, err := e.Eval(context.Background(), in, goldenNow); err != nil {
			answer["eval_error"] = err.Error()
		}
	}
	answer["nondeterministic"] = slices.Sorted(maps.Keys(ndb))
	b, err := json.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// shippedGoldenPolicy is shippedPolicy with a store holding a revoked jti
// ("revoked-jti") and a fingerprint of the token hashed "seen-hash" (from
// 198.51.100.9 with user agent "old/1").
func shippedGoldenPolicy(t *testing.T) *Set {
	t.Helper()
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	builtins.SetStore(st)
	t.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})
	ctx := context.Background()
	if _, err := st.PutRevocation(ctx, store.Revocation{Kind: store.KindJTI, Issuer: "https://as.example.com", Value: "revoked-jti",
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordFingerprint(ctx, "seen-hash", store.Sighting{IP: netip.MustParseAddr("198.51.100.9"), UserAgent: "old/1",
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	set, err := LoadDir("../../rego", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// goldenVariants change the shipped data.pdp.
var goldenVariants = map[string]func(map[string]any){
	"shipped": func(map[string]any) {},
	"many routes and clients": func(d map[string]any) {
		d["routes"] = []any{
			map[string]any{"name": "read accounts", "methods": []any{"GET"}, "host": "api.example.com", "path": "/v1/accounts/*",
				"audience": "https://api.example.com", "scopes": []any{"accounts:read"},
				"grant_types":           []any{"authorization_code", "refresh_token", "device_code", "token_exchange", "client_credentials"},
				"authorization_details": map[string]any{"type": "account_information", "actions": []any{"read"}}},
			map[string]any{"methods": []any{"POST", "put"}, "host": "api.example.com", "path": "/v1/accounts/*",
				"audience": "https://api.example.com", "scopes": []any{"accounts:write"}},
			map[string]any{"methods": "*", "host": "*.example.com", "path": "/v1/me", "scopes": []any{},
				"grant_types": []any{"authorization_code"}},
			map[string]any{"path": "/v1/batch/*", "scopes": []any{"batch:run"}, "grant_types": []any{"client_credentials"}},
			map[string]any{"methods": []any{"GET"}, "path": "/files/*", "path_parameters": true},
		}
		d["clients"] = map[string]any{
			"payments-job": map[string]any{"allowed_cidrs": []any{"10.20.0.0/16", "203.0.113.7"}, "sender_constraint": "dpop",
				"modes": map[string]any{"lifetime": "monitor"}},
			"batch":      map[string]any{"sender_constraint": "mtls"},
			"kiosk":      map[string]any{"allowed_cidrs": []any{"192.0.2.0/24"}, "modes": map[string]any{"network": "monitor"}},
			"legacy-app": map[string]any{"modes": map[string]any{"scope": "monitor", "fingerprint": "monitor"}},
		}
		d["environments"].(map[string]any)["prod"].(map[string]any)["client_scopes"] = map[string]any{
			"batch": []any{"batch:run", "accounts:read"}, "payments-job": []any{"accounts:read"}}
	},
	"everything monitored": func(d map[string]any) {
		modes := map[string]any{}
		for _, m := range []string{"lifetime", "scope", "dpop", "mtls", "sender_constraint", "network", "fingerprint", "route",
			"grant_intent", "delegation", "refresh"} {
			modes[m] = "monitor"
		}
		d["modes"] = modes
	},
	"no routes, unknown allowed": func(d map[string]any) { delete(d, "routes"); d["unknown_routes"] = "allow" },
	"broken settings": func(d map[string]any) {
		d["lifetimes"] = map[string]any{"default": map[string]any{"max_age": "forever"}}
		d["grant_types"] = map[string]any{"allowed": "all"}
		d["fingerprint"] = map[string]any{"ipv4_prefix": 40}
		d["token_exchange"] = map[string]any{"max_delegation_depth": 0}
		d["clients"] = map[string]any{"web-app": map[string]any{"sender_constraint": "carrier-pigeon", "allowed_cidrs": "any"}}
		d["routes"] = []any{map[string]any{"path": 7}}
	},
	"short lifetimes, another claim name": func(d map[string]any) {
		d["lifetimes"] = map[string]any{"default": map[string]any{"max_lifetime": "1m", "max_age": "1s"}}
		d["grant_type_claim"] = "grant"
		d["realm"] = "api \"prod\""
	},
	"no policy data": func(d map[string]any) { clear(d) },
}

// goldenRequests build the inputs: each call returns a fresh document.
var goldenRequests = map[string]func() map[string]any{}

func init() {
	now := goldenNow.UnixNano()
	nowS := goldenNow.Unix()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"aud": "https://api.example.com", "client_id": "web-app", "exp": nowS + 300, "iat": nowS - 60,
			"iss": "https://as.example.com", "jti": "j1", "sub": "alice", "scope": "accounts:read"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
				continue
			}
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	request := func(method, host, path string) map[string]any {
		return map[string]any{"headers": map[string]any{"user-agent": []any{"t/1"}}, "host": host, "method": method, "path": path,
			"port": 443, "query": map[string]any{}, "remote_ip": "203.0.113.7", "scheme": "https", "url": "https://" + host + path}
	}
	bearer := func(c map[string]any) map[string]any {
		return map[string]any{"bound": map[string]any{"method": "none"}, "hash": "h4sh", "issuer": "https://as.example.com",
			"present": true, "scheme": "bearer", "source": "jwt", "valid": true, "claims": c}
	}
	input := func(req, tok map[string]any) map[string]any {
		return map[string]any{"context": map[string]any{}, "dpop": map[string]any{"present": false, "valid": false},
			"environment": "prod", "now": now, "request": req, "token": tok}
	}
	read := func() map[string]any { return request("GET", "api.example.com", "/v1/accounts/42") }
	add := func(name string, f func() map[string]any) { goldenRequests[name] = f }
	allowed := func(c map[string]any) func() map[string]any {
		return func() map[string]any { return input(read(), bearer(c)) }
	}

	add("ok/bearer read", allowed(claims()))
	add("ok/authorization code claim", allowed(claims("gty", "authorization_code")))
	add("ok/refresh token claim", allowed(claims("gty", "refresh_token")))
	add("ok/device code urn", allowed(claims("gty", "urn:ietf:params:oauth:grant-type:device_code")))
	add("ok/token exchange with act", allowed(claims("act", map[string]any{"sub": "svc-b"})))
	add("ok/scp array", allowed(claims("scope", nil, "scp", []any{"accounts:read", "profile"})))
	add("ok/roles admin", allowed(claims("scope", "accounts:read accounts:write", "roles", []any{"admin"})))
	add("ok/groups support", allowed(claims("groups", "support")))
	add("ok/audience array", allowed(claims("aud", []any{"x", "https://api.example.com"})))
	add("ok/resource claim", allowed(claims("aud", nil, "resource", "https://api.example.com")))
	add("ok/authorization details fit", allowed(claims("authorization_details", []any{
		map[string]any{"type": "account_information", "actions": []any{"read", "list"}, "locations": []any{"https://api.example.com"}}})))
	add("ok/repeated scopes", allowed(claims("scope", "accounts:read  accounts:read profile")))
	add("client credentials", allowed(claims("client_id", "payments-job", "sub", "payments-job")))
	add("client credentials claimed", allowed(claims("client_id", "batch", "sub", "svc", "gty", "client_credentials")))
	add("client credentials from its network", func() map[string]any {
		in := input(read(), bearer(claims("client_id", "payments-job", "sub", "payments-job")))
		in["request"].(map[string]any)["remote_ip"] = "10.20.3.4"
		return in
	})
	add("kiosk from elsewhere", allowed(claims("client_id", "kiosk")))
	add("legacy app without scope", allowed(claims("client_id", "legacy-app", "scope", "profile")))
	add("fail/scope missing", allowed(claims("scope", "profile")))
	add("fail/scope frozen on write", func() map[string]any {
		return input(request("POST", "api.example.com", "/v1/accounts/42"), bearer(claims("scope", "accounts:write", "roles", []any{"admin"})))
	})
	add("fail/role without the scope", allowed(claims("roles", []any{"guest"})))
	add("fail/audience mismatch", allowed(claims("aud", "https://other.example.com")))
	add("fail/unknown route", func() map[string]any {
		return input(request("DELETE", "api.example.com", "/v2/things"), bearer(claims()))
	})
	add("user only route", func() map[string]any {
		return input(request("GET", "www.example.com", "/v1/me"), bearer(claims()))
	})
	add("batch route", func() map[string]any {
		return input(request("GET", "api.example.com", "/v1/batch/nightly"), bearer(claims("client_id", "batch", "sub", "batch", "scope", "batch:run")))
	})
	add("path parameters", func() map[string]any {
		return input(request("GET", "api.example.com", "/files/a;b"), bearer(claims()))
	})
	add("fail/path parameters on a route without them", func() map[string]any {
		return input(request("GET", "api.example.com", "/v1/accounts/4;2"), bearer(claims()))
	})
	add("fail/dot segment", func() map[string]any {
		return input(request("GET", "api.example.com", "/v1/accounts/../admin"), bearer(claims()))
	})
	add("fail/deprecated grant", allowed(claims("gty", "password")))
	add("fail/unknown grant", allowed(claims("gty", map[string]any{"x": 1})))
	add("fail/revoked jti", allowed(claims("jti", "revoked-jti")))
	add("fail/lifetime too long", allowed(claims("exp", nowS+7200)))
	add("fail/token too old", allowed(claims("iat", nowS-7200, "exp", nowS+60)))
	add("fail/delegation too deep", allowed(claims("act", map[string]any{"sub": "a", "act": map[string]any{"sub": "b", "act": map[string]any{"sub": "c"}}})))
	add("fail/act not an object", allowed(claims("act", "svc")))
	add("fail/authorization details of unknown type", allowed(claims("authorization_details", []any{map[string]any{"type": "payment"}})))
	add("fail/authorization details without the action", allowed(claims("authorization_details", []any{
		map[string]any{"type": "account_information", "actions": []any{"list"}}})))
	add("fail/authorization details not an array", allowed(claims("authorization_details", "x")))
	add("fail/claims of odd shapes", allowed(map[string]any{"aud": []any{"x", "https://api.example.com"}, "client_id": 7, "scope": "accounts:read",
		"scp": "x", "iat": "1", "exp": 2, "iss": "https://as.example.com", "act": map[string]any{"sub": "svc"}}))
	add("fail/subject with a newline", allowed(claims("sub", "al\nice")))
	add("fail/claims not an object", func() map[string]any { tok := bearer(nil); tok["claims"] = "x"; return input(read(), tok) })
	add("fail/no token", func() map[string]any {
		return input(read(), map[string]any{"present": false, "valid": false, "claims": map[string]any{},
			"error": map[string]any{"code": "token_missing", "message": "none"}})
	})
	add("fail/token expired", func() map[string]any {
		return input(read(), map[string]any{"present": true, "valid": false, "claims": map[string]any{}, "scheme": "bearer",
			"error": map[string]any{"code": "token_expired", "message": "expired"}})
	})
	add("fail/unknown error code", func() map[string]any {
		return input(read(), map[string]any{"present": true, "valid": false, "claims": map[string]any{}, "scheme": "dpop",
			"error": map[string]any{"code": "weird", "message": ""}})
	})
	add("fail/request invalid", func() map[string]any {
		return input(read(), map[string]any{"present": true, "valid": false, "claims": map[string]any{},
			"error": map[string]any{"code": "request_invalid", "message": "two authorization headers"}})
	})
	add("fail/scheme unsupported", func() map[string]any { tok := bearer(claims()); tok["scheme"] = "mac"; return input(read(), tok) })
	add("fail/fingerprint from elsewhere", func() map[string]any { tok := bearer(claims()); tok["hash"] = "seen-hash"; return input(read(), tok) })
	add("fingerprint from the same network", func() map[string]any {
		tok := bearer(claims())
		tok["hash"] = "seen-hash"
		in := input(read(), tok)
		in["request"].(map[string]any)["remote_ip"] = "198.51.100.200"
		in["request"].(map[string]any)["headers"] = map[string]any{"user-agent": []any{"old/1"}}
		return in
	})
	dpop := func(proof map[string]any, bound map[string]any, c map[string]any) func() map[string]any {
		return func() map[string]any {
			tok := bearer(c)
			tok["scheme"] = "dpop"
			tok["bound"] = bound
			in := input(read(), tok)
			in["dpop"] = proof
			return in
		}
	}
	jkt := map[string]any{"method": "dpop", "jkt": "k1"}
	add("ok/dpop bound with its proof", dpop(map[string]any{"present": true, "valid": true, "jkt": "k1"}, jkt, claims()))
	add("ok/dpop with a nonce", dpop(map[string]any{"present": true, "valid": true, "jkt": "k1", "nonce": "n-1"}, jkt, claims()))
	add("ok/dpop client", dpop(map[string]any{"present": true, "valid": true, "jkt": "k1"}, jkt, claims("client_id", "payments-job", "sub", "payments-job")))
	add("fail/dpop another key", dpop(map[string]any{"present": true, "valid": true, "jkt": "k2"}, jkt, claims()))
	add("fail/dpop replayed", dpop(map[string]any{"present": true, "valid": false, "error": map[string]any{"code": "dpop_replayed", "message": "seen"}}, jkt, claims()))
	add("fail/dpop nonce required", dpop(map[string]any{"present": true, "valid": false, "nonce": "n-2",
		"error": map[string]any{"code": "dpop_nonce_required", "message": "use the nonce"}}, jkt, claims()))
	add("fail/dpop without a proof", dpop(map[string]any{"present": false, "valid": false}, jkt, claims()))
	add("fail/dpop scheme on an unbound token", dpop(map[string]any{"present": true, "valid": true, "jkt": "k1"}, map[string]any{"method": "none"}, claims()))
	add("fail/dpop bound token as bearer", func() map[string]any {
		tok := bearer(claims())
		tok["bound"] = jkt
		return input(read(), tok)
	})
	add("fail/dpop client with a bearer token", allowed(claims("client_id", "payments-job", "sub", "payments-job", "iat", nowS-60, "exp", nowS+3000)))
	mtls := func(cert string, c map[string]any) func() map[string]any {
		return func() map[string]any {
			tok := bearer(c)
			tok["bound"] = map[string]any{"method": "mtls", "x5t#S256": "cert-1"}
			in := input(read(), tok)
			if cert != "" {
				in["request"].(map[string]any)["client_cert"] = map[string]any{"x5t#S256": cert}
			}
			return in
		}
	}
	add("ok/mtls bound with its certificate", mtls("cert-1", claims("client_id", "batch", "sub", "batch")))
	add("fail/mtls another certificate", mtls("cert-2", claims()))
	add("fail/mtls without a certificate", mtls("", claims()))
	add("fail/mtls client with a bearer token", allowed(claims("client_id", "batch", "sub", "batch")))
	add("fail/bound by an unknown method", func() map[string]any {
		tok := bearer(claims())
		tok["bound"] = map[string]any{"method": "carrier-pigeon"}
		return input(read(), tok)
	})
	add("fail/now not a number", func() map[string]any { in := allowed(claims())(); in["now"] = "noon"; return in })
	add("environment unknown", func() map[string]any { in := allowed(claims())(); in["environment"] = "staging"; return in })
	endpoint := func(grant string, refresh map[string]any) func() map[string]any {
		return func() map[string]any {
			in := input(request("POST", "as.example.com", "/token"), map[string]any{"present": false, "valid": false, "claims": map[string]any{},
				"error": map[string]any{"code": "token_missing", "message": "none"}})
			te := map[string]any{"grant_type": grant}
			if refresh != nil {
				te["refresh"] = refresh
			}
			in["token_endpoint"] = te
			return in
		}
	}
	fresh := func(kv ...any) map[string]any {
		r := map[string]any{"present": true, "valid": true, "hash": "rh", "issuer": "https://as.example.com", "subject": "alice",
			"session_id": "s1", "client_id": "web-app", "reused": false,
			"family": map[string]any{"id": "f1", "created": now - int64(time.Hour), "rotations": 3}}
		for i := 0; i < len(kv); i += 2 {
			r[kv[i].(string)] = kv[i+1]
		}
		return r
	}
	add("token endpoint/client credentials", endpoint("client_credentials", nil))
	add("token endpoint/refresh", endpoint("refresh_token", fresh()))
	add("token endpoint/refresh reused", endpoint("refresh_token", fresh("reused", true)))
	add("token endpoint/refresh family too old", endpoint("refresh_token", fresh("family", map[string]any{"id": "f1", "created": now - int64(800*time.Hour), "rotations": 1})))
	add("token endpoint/refresh not valid", endpoint("refresh_token", map[string]any{"present": true, "valid": false,
		"error": map[string]any{"code": "token_expired", "message": "expired"}}))
	add("token endpoint/dpop client refresh", endpoint("refresh_token", fresh("client_id", "payments-job")))
	add("token endpoint/wrong url", func() map[string]any {
		in := endpoint("refresh_token", fresh())()
		in["request"] = request("POST", "as.example.com", "/other")
		return in
	})
	for name := range goldenRequests {
		if strings.Contains(name, "  ") {
			panic(name)
		}
	}
}
