package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenguard/pdp/internal/config"
)

// pathData is the policy data of the path tests: one route per outcome, so
// that the outcome says which route a spelling was read as.
const pathData = `{"pdp": {
  "routes": [
    {"name": "accounts", "methods": ["GET"], "host": "api.example.com", "path": "/v1/accounts/*",
     "audience": "https://api.example.com", "scopes": ["accounts:read"]},
    {"name": "admin", "methods": ["GET"], "host": "api.example.com", "path": "/v1/admin/**",
     "audience": "https://api.example.com", "scopes": ["admin"]},
    {"name": "matrix", "methods": ["GET"], "host": "api.example.com", "path": "/v1/matrix/*",
     "audience": "https://api.example.com", "scopes": ["accounts:read"], "path_parameters": true}
  ],
  "unknown_routes": "deny"
}}`

// outcome is what a transport answered, in its own shape, reduced to one
// comparable value.
type outcome struct {
	allow  bool
	status int
	code   string // the first reason on a deny
}

var (
	// onAccounts: allowed on the accounts (or matrix) route.
	onAccounts = outcome{true, 200, ""}
	// onAdmin: read as a path of the admin route (the token lacks its scope).
	onAdmin = outcome{false, 403, "scope_insufficient"}
	// noRoute: read as a path no route matches.
	noRoute = outcome{false, 403, "route_unknown"}
	// refused: the one path normalisation refuses the spelling.
	refused = outcome{false, 400, "request_path_invalid"}
)

// Transports a spelling can be carried by: a JSON string carries any
// Unicode text, an HTTP header no control character but a tab, and a
// protobuf string valid UTF-8 only.
const (
	viaDecide = 1 << iota
	viaForwardAuth
	viaExtAuthz
	viaAll = viaDecide | viaForwardAuth | viaExtAuthz
)

var pathSpellings = []struct {
	name, path string
	want       outcome
	via        int
}{
	{"ok/plain", "/v1/accounts/42", onAccounts, viaAll},
	{"ok/query kept apart from the path", "/v1/accounts/42?next=%2F..%2Fadmin", onAccounts, viaAll},
	{"ok/unreserved percent-encodings", "/v1/%61ccounts/%34%32", onAccounts, viaAll},
	{"ok/encoded tilde", "/v1/accounts/%7Ealice", onAccounts, viaAll},
	{"ok/encoded letter", "/v1/accounts/%41", onAccounts, viaAll},
	{"ok/mixed-case percent-encodings", "/v1/accounts/caf%c3%A9", onAccounts, viaAll},
	{"ok/raw non-ASCII", "/v1/accounts/café", onAccounts, viaAll},
	{"ok/literal percent sign", "/v1/accounts/100%25", onAccounts, viaAll},
	{"ok/dot segment", "/v1/./accounts/42", onAccounts, viaAll},
	{"ok/dot-dot back into accounts", "/v1/admin/../accounts/42", onAccounts, viaAll},
	{"ok/dot-dot beyond root", "/../../v1/accounts/42", onAccounts, viaAll},
	{"ok/double slash", "/v1//accounts//42", onAccounts, viaAll},
	{"ok/leading double slash", "//v1/accounts/42", onAccounts, viaAll},
	{"ok/path parameters on a route that accepts them", "/v1/matrix/42;v=1", onAccounts, viaAll},
	{"route/dot-dot into admin", "/v1/accounts/../admin/users", onAdmin, viaAll},
	{"route/encoded dot-dot into admin", "/v1/accounts/%2e%2E/admin/users", onAdmin, viaAll},
	{"route/two dot-dots into admin", "/v1/accounts/42/../../admin/users", onAdmin, viaAll},
	{"route/trailing slash is another path", "/v1/accounts/42/", noRoute, viaAll},
	{"route/case is another path", "/V1/accounts/42", noRoute, viaAll},
	{"fail/raw backslashes", `/v1/accounts/42\..\..\admin\users`, refused, viaAll},
	{"fail/encoded backslashes", "/v1/accounts/42%5C..%5C..%5Cadmin%5Cusers", refused, viaAll},
	{"fail/encoded backslash lower case", "/v1/accounts/42%5c..%5cadmin", refused, viaAll},
	{"fail/encoded slash", "/v1/accounts/a%2Fb", refused, viaAll},
	{"fail/encoded slash lower case", "/v1/accounts/a%2fb", refused, viaAll},
	{"fail/encoded slashes climbing", "/v1/accounts/42%2F..%2F..%2Fadmin%2Fusers", refused, viaAll},
	{"fail/double-encoded slash", "/v1/accounts/%252F", refused, viaAll},
	{"fail/double-encoded slashes climbing", "/v1/accounts/42%252f..%252fadmin", refused, viaAll},
	{"fail/double-encoded letter", "/v1/accounts/%2541", refused, viaAll},
	{"fail/overlong slash", "/v1/accounts/%C0%AF", refused, viaAll},
	{"fail/three-byte overlong slash", "/v1/accounts/%E0%80%AF", refused, viaAll},
	{"fail/invalid UTF-8", "/v1/accounts/%FF", refused, viaAll},
	{"fail/encoded surrogate", "/v1/accounts/%ED%A0%80", refused, viaAll},
	{"fail/encoded NUL", "/v1/accounts/42%00", refused, viaAll},
	{"fail/encoded newline", "/v1/accounts/42%0A", refused, viaAll},
	{"fail/encoded CRLF", "/v1/accounts/42%0D%0AX-Admin:%201", refused, viaAll},
	{"fail/encoded tab", "/v1/accounts/42%09", refused, viaAll},
	{"fail/encoded DEL", "/v1/accounts/42%7F", refused, viaAll},
	{"fail/encoded C1 control", "/v1/accounts/42%C2%85", refused, viaAll},
	{"fail/raw tab", "/v1/accounts/4\t2", refused, viaAll},
	{"fail/raw NUL", "/v1/accounts/42\x00", refused, viaDecide | viaExtAuthz},
	{"fail/raw newline", "/v1/accounts/42\n", refused, viaDecide | viaExtAuthz},
	{"fail/raw invalid UTF-8", "/v1/accounts/\xff", refused, viaForwardAuth},
	{"fail/invalid percent-encoding", "/v1/accounts/%zz", refused, viaAll},
	{"fail/path parameter", "/v1/accounts/42;jsessionid=x", refused, viaAll},
	{"fail/encoded path parameter", "/v1/accounts/42%3Bjsessionid=x", refused, viaAll},
	{"fail/dot-dot with parameters", "/v1/accounts/..;/admin/users", refused, viaAll},
	{"fail/dot-dot with parameters on a route that accepts them", "/v1/matrix/..;/admin/users", refused, viaAll},
	{"fail/encoded dot-dot with parameters", "/v1/accounts/%2e%2e;/admin", refused, viaAll},
	{"fail/dot-dot after an empty segment", "/v1/accounts//../admin/users", refused, viaAll},
	{"ok/encoded hash is a character of the segment", "/v1/accounts/42%23", onAccounts, viaAll},
	{"fail/raw hash climbing (Go's server keeps it in the path)", "/v1/accounts/42#/../../admin/users", refused, viaAll},
	{"fail/raw hash in the query", "/v1/accounts/42?x=1#/../../admin/users", refused, viaAll},
	{"fail/empty fragment", "/v1/accounts/42#", refused, viaAll},
}

// TestPathSpellingsSameOnEveryTransport sends every spelling through
// /v1/decide, /v1/forward-auth (from a trusted gateway) and the ext_authz
// listener of one PDP, and expects the same outcome from each.
func TestPathSpellingsSameOnEveryTransport(t *testing.T) {
	dir := policyWithData(t, pathData)
	tb := newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = dir
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	})
	ext := serveExtAuthz(t, tb.app)
	// One token per transport: each is seen from one network and client
	// only (the fingerprint guardrail).
	decideTok, forwardTok, extTok := tb.mint(t, "ES256", nil), tb.mint(t, "ES256", nil), tb.mint(t, "ES256", nil)

	if len(pathSpellings) < 40 {
		t.Fatalf("%d spellings, want at least 40", len(pathSpellings))
	}
	for _, sp := range pathSpellings {
		t.Run(sp.name, func(t *testing.T) {
			if sp.via&viaDecide != 0 {
				if got := decideOutcome(t, tb, sp.path, decideTok); got != sp.want {
					t.Errorf("/v1/decide: %+v, want %+v", got, sp.want)
				}
			}
			if sp.via&viaForwardAuth != 0 {
				if got := forwardAuthOutcome(t, tb, sp.path, forwardTok); got != sp.want {
					t.Errorf("/v1/forward-auth: %+v, want %+v", got, sp.want)
				}
			}
			if sp.via&viaExtAuthz != 0 {
				if got := extAuthzOutcome(t, ext, sp.path, extTok); got != sp.want {
					t.Errorf("ext_authz: %+v, want %+v", got, sp.want)
				}
			}
		})
	}

	// Refusals are decisions: counted under their reason like any deny.
	resp, err := http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(`pdp_decisions_total{allow="false",grant_type="none",reason="request_path_invalid"}`)) {
		t.Errorf("/metrics counts no request_path_invalid decision")
	}
}

func decideOutcome(t *testing.T, tb *testbed, path, tok string) outcome {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"request": map[string]any{
		"method": "GET", "url": "https://api.example.com" + path,
		"headers": map[string]any{"authorization": "Bearer " + tok},
	}})
	resp, err := http.Post(tb.pdp.URL+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/decide: %d %s", resp.StatusCode, raw)
	}
	var d decideResponse
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("/v1/decide: %v: %s", err, raw)
	}
	o := outcome{allow: d.Allow, status: d.Status}
	if len(d.Reasons) > 0 {
		o.code = d.Reasons[0].Code
	}
	return o
}

func forwardAuthOutcome(t *testing.T, tb *testbed, path, tok string) outcome {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tb.pdp.URL+"/v1/forward-auth", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "api.example.com"
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-Uri", path)
	req.Header.Set("X-Original-Proto", "https")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return onAccounts
	}
	var body struct {
		Allow   *bool    `json:"allow"`
		Reasons []string `json:"reasons"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || body.Allow == nil || *body.Allow || len(body.Reasons) == 0 {
		t.Fatalf("/v1/forward-auth: %d %s: not a forward-auth deny", resp.StatusCode, raw)
	}
	return outcome{allow: false, status: resp.StatusCode, code: body.Reasons[0]}
}

func extAuthzOutcome(t *testing.T, auth authv3.AuthorizationClient, path, tok string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": path, ":scheme": "https",
		"authorization": "Bearer " + tok}
	resp, err := auth.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7"},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Headers: h, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/1.1",
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetOkResponse() != nil {
		return onAccounts
	}
	d := resp.GetDeniedResponse()
	var body struct {
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || len(body.Reasons) == 0 {
		t.Fatalf("ext_authz: %v: not a deny", resp)
	}
	return outcome{allow: false, status: int(d.GetStatus().GetCode()), code: body.Reasons[0]}
}

// serveExtAuthz serves the app's own ext_authz server (with its metrics
// and decision log) on loopback.
func serveExtAuthz(t *testing.T, a *app) authv3.AuthorizationClient {
	t.Helper()
	return authv3.NewAuthorizationClient(dialExtAuthz(t, a.extAuthz))
}
