package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/extauthz"
	"github.com/tokenguard/pdp/internal/store"
)

// envoy is a client of a real ext_authz server on loopback, in front of
// the testbed's decision engine: what Envoy's ext_authz filter does.
type envoy struct {
	auth   authv3.AuthorizationClient
	health healthpb.HealthClient
}

func startExtAuthz(t *testing.T, a *app) *envoy {
	t.Helper()
	srv := extauthz.NewServer(a.decider, extauthz.Options{
		Logger:      slog.New(slog.DiscardHandler),
		Ready:       func() error { return errors.Join(a.policy.Ready(), a.verifier.Ready()) },
		DecisionLog: a.decisionLog,
	})
	conn := dialExtAuthz(t, srv)
	return &envoy{auth: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn)}
}

// dialExtAuthz serves srv on loopback until the test ends and returns a
// client connection to it.
func dialExtAuthz(t *testing.T, srv *extauthz.Server) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ext_authz Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// call is the original request Envoy asks about.
type call struct {
	method, url string
	headers     map[string]string
	source      string // the downstream address Envoy saw
	cert        string // the downstream client certificate (PEM) Envoy verified
	body        string
}

// request is the CheckRequest Envoy sends for c: the headers map with
// pseudo-headers, the source address and the URL-encoded certificate.
func (c call) request(t *testing.T) *authv3.CheckRequest {
	t.Helper()
	if c.method == "" {
		c.method = "GET"
	}
	if c.url == "" {
		c.url = "https://api.example.com/v1/accounts/42"
	}
	if c.source == "" {
		c.source = "203.0.113.7"
	}
	u, err := url.Parse(c.url)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{":authority": u.Host, ":method": c.method, ":path": u.RequestURI(), ":scheme": u.Scheme,
		"user-agent": "app/1.0", "x-request-id": "r-1"}
	for k, v := range c.headers {
		h[strings.ToLower(k)] = v
	}
	size := int64(len(c.body))
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: c.source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123},
			}}},
			Certificate: strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(c.cert),
		},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "r-1", Method: c.method, Headers: h, Path: u.RequestURI(), Host: u.Host, Scheme: u.Scheme,
			Protocol: "HTTP/2", Body: c.body, Size: size,
		}},
	}}
}

func (e *envoy) check(t *testing.T, c call) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := e.auth.Check(ctx, c.request(t))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// extAllowed checks an OK answer and returns the headers it sends upstream
// and to the client.
func extAllowed(t *testing.T, resp *authv3.CheckResponse) (upstream, client map[string]string, removed []string) {
	t.Helper()
	ok := resp.GetOkResponse()
	if resp.GetStatus().GetCode() != int32(code.Code_OK) || ok == nil {
		t.Fatalf("want an allow, got %v", resp)
	}
	collect := func(opts []*corev3.HeaderValueOption) map[string]string {
		m := map[string]string{}
		for _, o := range opts {
			if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("%s does not overwrite", o.GetHeader().GetKey())
			}
			m[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
		}
		return m
	}
	return collect(ok.GetHeaders()), collect(ok.GetResponseHeadersToAdd()), ok.GetHeadersToRemove()
}

// extDeny is what a denied answer tells the client.
type extDeny struct {
	status  int
	grpc    code.Code
	headers map[string]string
	Error   string   `json:"error"`
	Reasons []string `json:"reasons"`
	ID      string   `json:"decision_id"`
}

func extDenied(t *testing.T, resp *authv3.CheckResponse, status int, reason string) extDeny {
	t.Helper()
	d := resp.GetDeniedResponse()
	if resp.GetStatus().GetCode() == int32(code.Code_OK) || d == nil {
		t.Fatalf("want a deny, got %v", resp)
	}
	out := extDeny{status: int(d.GetStatus().GetCode()), grpc: code.Code(resp.GetStatus().GetCode()), headers: map[string]string{}}
	for _, o := range d.GetHeaders() {
		out.headers[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &out); err != nil {
		t.Fatalf("denied body: %v: %q", err, d.GetBody())
	}
	if out.status != status || !slices.Contains(out.Reasons, reason) || len(out.ID) != 32 {
		t.Fatalf("deny = %d %v %+v, want %d with %s", out.status, out.grpc, out, status, reason)
	}
	want := map[int]code.Code{400: code.Code_INVALID_ARGUMENT, 401: code.Code_UNAUTHENTICATED, 403: code.Code_PERMISSION_DENIED, 500: code.Code_INTERNAL}[status]
	if out.grpc != want {
		t.Errorf("gRPC status = %v, want %v", out.grpc, want)
	}
	if out.headers["content-type"] != "application/json" || out.headers["cache-control"] != "no-store" {
		t.Errorf("deny headers = %v", out.headers)
	}
	return out
}

func TestExtAuthzGuardrails(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	env := startExtAuthz(t, tb.app)
	bearerOf := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

	t.Run("ok/a valid token reaches the upstream with its headers, forged ones replaced or removed", func(t *testing.T) {
		h := bearerOf(tb.mint(t, "ES256", nil))
		h["x-tokenguard-subject"] = "admin"
		h["x-tokenguard-roles"] = "admin"
		upstream, _, removed := extAllowed(t, env.check(t, call{headers: h}))
		for name, want := range map[string]string{
			"x-tokenguard-subject": "alice", "x-tokenguard-client-id": "web-app",
			"x-tokenguard-scopes": "accounts:read", "x-tokenguard-grant-type": "authorization_code",
		} {
			if upstream[name] != want {
				t.Errorf("%s = %q, want %q (upstream %v)", name, upstream[name], want, upstream)
			}
		}
		if len(upstream[extauthz.DecisionIDHeader]) != 32 {
			t.Errorf("upstream = %v: no decision id", upstream)
		}
		if !slices.Contains(removed, "x-tokenguard-roles") || slices.Contains(removed, "x-tokenguard-subject") {
			t.Errorf("headers to remove = %v", removed)
		}
	})
	t.Run("fail/no token is 401 with a bare challenge", func(t *testing.T) {
		d := extDenied(t, env.check(t, call{}), 401, "token_missing")
		if d.headers["www-authenticate"] != `Bearer realm="tokenguard"` || d.Error != "token_missing" {
			t.Errorf("deny = %+v", d)
		}
	})
	t.Run("fail/an expired token is 401 invalid_token", func(t *testing.T) {
		now := time.Now()
		tok := tb.mint(t, "ES256", map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})
		d := extDenied(t, env.check(t, call{headers: bearerOf(tok)}), 401, "token_expired")
		if !strings.Contains(d.headers["www-authenticate"], `error="invalid_token"`) || d.Error != "invalid_token" {
			t.Errorf("deny = %+v", d)
		}
	})
	t.Run("fail/a wrong scope is 403 insufficient_scope", func(t *testing.T) {
		d := extDenied(t, env.check(t, call{headers: bearerOf(tb.mint(t, "ES256", map[string]any{"scope": "profile"}))}), 403, "scope_insufficient")
		if c := d.headers["www-authenticate"]; !strings.Contains(c, `error="insufficient_scope"`) || !strings.Contains(c, `scope="accounts:read"`) || d.Error != "insufficient_scope" {
			t.Errorf("deny = %+v", d)
		}
	})
	t.Run("fail/a revoked subject is 401", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "mallory", "iat": time.Now().Add(-time.Minute).Unix()})
		extAllowed(t, env.check(t, call{headers: bearerOf(tok)}))
		if _, err := tb.app.store.PutRevocation(t.Context(), store.Revocation{Kind: store.KindSubject, Issuer: tb.issuers["ES256"].URL(),
			Value: "mallory", Reason: "disabled", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		d := extDenied(t, env.check(t, call{headers: bearerOf(tok)}), 401, "subject_revoked")
		if d.headers["www-authenticate"] == "" {
			t.Error("no challenge")
		}
	})

	const accounts = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	dpopCall := func(t *testing.T, tok, htu string) call {
		t.Helper()
		proof, err := prover.Proof("GET", htu, tok)
		if err != nil {
			t.Fatal(err)
		}
		return call{headers: map[string]string{"authorization": "DPoP " + tok, "dpop": proof}}
	}
	t.Run("ok/DPoP-bound token with its proof, then the proof replayed is 401 dpop_replayed", func(t *testing.T) {
		c := dpopCall(t, bound, accounts)
		extAllowed(t, env.check(t, c))
		d := extDenied(t, env.check(t, c), 401, "dpop_replayed")
		if !strings.HasPrefix(d.headers["www-authenticate"], "DPoP ") || d.Error != "invalid_dpop_proof" {
			t.Errorf("deny = %+v", d)
		}
	})
	t.Run("ok/DPoP htu against the URL Envoy saw, normalised", func(t *testing.T) {
		c := dpopCall(t, bound, accounts)
		c.url = "https://API.Example.com:443/v1/accounts/42"
		extAllowed(t, env.check(t, c))
	})
	t.Run("fail/DPoP proof for another host", func(t *testing.T) {
		c := dpopCall(t, bound, "https://evil.example.com/v1/accounts/42")
		extDenied(t, env.check(t, c), 401, "dpop_proof_invalid")
	})

	certPEM, thumb := selfSignedCert(t)
	otherPEM, _ := selfSignedCert(t)
	mtls := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"x5t#S256": thumb}})
	t.Run("ok/mTLS-bound token with the certificate Envoy forwards", func(t *testing.T) {
		extAllowed(t, env.check(t, call{headers: bearerOf(mtls), cert: certPEM}))
	})
	t.Run("fail/mTLS-bound token with another certificate", func(t *testing.T) {
		extDenied(t, env.check(t, call{headers: bearerOf(mtls), cert: otherPEM}), 401, "mtls_binding_mismatch")
	})
	t.Run("fail/mTLS-bound token with its certificate in a client-sent header only", func(t *testing.T) {
		h := bearerOf(mtls)
		h["x-ssl-client-cert"] = url.QueryEscape(certPEM)
		h["x-forwarded-client-cert"] = "Cert=" + url.QueryEscape(certPEM)
		extDenied(t, env.check(t, call{headers: h}), 401, "mtls_binding_mismatch")
	})

	job, _ := dpoptest.NewProver("ES256")
	jobToken := tb.mint(t, "ES256", map[string]any{"sub": "payments-job", "client_id": "payments-job",
		"cnf": map[string]any{"jkt": job.JKT()}, "exp": time.Now().Add(10 * time.Minute).Unix()})
	jobCall := func(t *testing.T, source string) call {
		proof, err := job.Proof("GET", accounts, jobToken)
		if err != nil {
			t.Fatal(err)
		}
		return call{source: source, headers: map[string]string{"authorization": "DPoP " + jobToken, "dpop": proof,
			"x-forwarded-for": "10.20.7.9", "x-real-ip": "10.20.7.9"}}
	}
	t.Run("ok/the source address Envoy saw is inside the client's range", func(t *testing.T) {
		extAllowed(t, env.check(t, jobCall(t, "10.20.7.9")))
	})
	t.Run("fail/a client-sent X-Forwarded-For does not pass the allow-list", func(t *testing.T) {
		extDenied(t, env.check(t, jobCall(t, "203.0.113.7")), 403, "ip_not_allowed")
	})

	t.Run("fail/refresh-token reuse seen in the form body Envoy forwards", func(t *testing.T) {
		es := tb.issuers["ES256"]
		refresh := func() string { return mintRefresh(t, es, "sess-ext") }
		tokenCall := func(rt string) call {
			return call{method: "POST", url: "https://as.example.com/token",
				headers: map[string]string{"content-type": "application/x-www-form-urlencoded"},
				body:    "grant_type=refresh_token&refresh_token=" + url.QueryEscape(rt) + "&client_id=web-app"}
		}
		rt1, rt2 := refresh(), refresh()
		extAllowed(t, env.check(t, tokenCall(rt1)))
		extAllowed(t, env.check(t, tokenCall(rt2)))
		d := extDenied(t, env.check(t, tokenCall(rt1)), 400, "refresh_token_reused")
		if d.headers["www-authenticate"] != "" {
			t.Errorf("a token-endpoint deny with a challenge: %v", d.headers)
		}
	})

	t.Run("ok/the health service follows readiness", func(t *testing.T) {
		for _, service := range []string{"", extauthz.ServiceName} {
			resp, err := env.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %q = %v %v", service, resp, err)
			}
		}
	})
}

// TestExtAuthzDPoPNonce: the DPoP-Nonce reaches the client on both paths,
// in the denied response and, on an allow, as a response header.
func TestExtAuthzDPoPNonce(t *testing.T) {
	tb := newGuardrailTestbed(t, func(c *config.Config) { c.DPoP.Nonce.Enabled = true })
	env := startExtAuthz(t, tb.app)
	const accounts = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	dpopCall := func(opts ...dpoptest.ProofOption) call {
		proof, err := prover.Proof("GET", accounts, bound, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return call{headers: map[string]string{"authorization": "DPoP " + bound, "dpop": proof}}
	}
	d := extDenied(t, env.check(t, dpopCall()), 401, "dpop_nonce_required")
	nonce := d.headers["dpop-nonce"]
	if nonce == "" || d.Error != "use_dpop_nonce" {
		t.Fatalf("deny = %+v, want use_dpop_nonce and a DPoP-Nonce", d)
	}
	_, client, _ := extAllowed(t, env.check(t, dpopCall(dpoptest.WithNonce(nonce))))
	if client["dpop-nonce"] == "" {
		t.Errorf("client headers on the allow = %v, want a fresh DPoP-Nonce", client)
	}
}

// TestExtAuthzWithoutAPolicy: no policy loaded is NOT_SERVING on the health
// service and a 500 deny, never an OK, on every check.
func TestExtAuthzWithoutAPolicy(t *testing.T) {
	a, iss := newBrokenPolicyApp(t)
	t.Cleanup(func() { _ = a.Close() })
	env := startExtAuthz(t, a)

	resp, err := env.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: extauthz.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health without a policy = %v %v, want NOT_SERVING", resp, err)
	}
	tok, _ := iss.Mint(map[string]any{"aud": testAudience, "sub": "alice", "client_id": "web"})
	d := extDenied(t, env.check(t, call{headers: map[string]string{"authorization": "Bearer " + tok}}), 500, "policy_error")
	if d.headers["www-authenticate"] != "" {
		t.Errorf("a policy error with a challenge: %v", d.headers)
	}
}
