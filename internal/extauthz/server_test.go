package extauthz

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

func TestCheckTranslatesTheRequest(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, rec, Options{})
	certPEM, thumb, _ := selfSigned(t, "client", false, nil)
	httpOf := func(r *authv3.CheckRequest) *authv3.AttributeContext_HttpRequest { return r.Attributes.Request.Http }

	tests := []struct {
		name   string
		req    func() *authv3.CheckRequest
		verify func(t *testing.T, r *decision.Request)
	}{
		{"ok/method, absolute URL and lower-case headers without pseudo-headers", func() *authv3.CheckRequest {
			return envoyRequest(map[string]string{"authorization": "Bearer t0k", "user-agent": "app/1.0"})
		}, func(t *testing.T, r *decision.Request) {
			if r.Method != "GET" || r.URL.String() != "https://api.example.com/v1/accounts/42" {
				t.Errorf("method, url = %s %s", r.Method, r.URL)
			}
			if !slices.Equal(r.Headers["authorization"], []string{"Bearer t0k"}) || !slices.Equal(r.Headers["user-agent"], []string{"app/1.0"}) {
				t.Errorf("headers = %v", r.Headers)
			}
			for name := range r.Headers {
				if strings.HasPrefix(name, ":") {
					t.Errorf("pseudo-header %s reached the policy", name)
				}
			}
		}},
		{"ok/path with its query, host with its port, normalised", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			h := httpOf(r)
			h.Scheme, h.Host, h.Path = "HTTPS", "API.Example.COM:443", "/v1/a/../accounts/%7e42?b=2&a=1"
			return r
		}, func(t *testing.T, r *decision.Request) {
			if got := r.URL.String(); got != "https://api.example.com/v1/accounts/~42?b=2&a=1" {
				t.Errorf("url = %s", got)
			}
		}},
		{"ok/plain http on another port", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			h := httpOf(r)
			h.Scheme, h.Host, h.Path = "http", "svc.internal:8080", "/x"
			return r
		}, func(t *testing.T, r *decision.Request) {
			if got := r.URL.String(); got != "http://svc.internal:8080/x" {
				t.Errorf("url = %s", got)
			}
		}},
		{"ok/pseudo-headers stand in for empty fields", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{":method": "DELETE", ":authority": "billing.example.com", ":path": "/v1/invoices/7?force=1", ":scheme": "http"})
			h := httpOf(r)
			h.Method, h.Host, h.Path, h.Scheme = "", "", "", ""
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.Method != "DELETE" || r.URL.String() != "http://billing.example.com/v1/invoices/7?force=1" {
				t.Errorf("method, url = %s %s", r.Method, r.URL)
			}
		}},
		{"ok/a comma-joined Authorization stays one value", func() *authv3.CheckRequest {
			return envoyRequest(map[string]string{"authorization": "Bearer a,Bearer b", "dpop": "p1,p2"})
		}, func(t *testing.T, r *decision.Request) {
			if !slices.Equal(r.Headers["authorization"], []string{"Bearer a,Bearer b"}) || len(r.Headers["dpop"]) != 1 {
				t.Errorf("headers = %v", r.Headers)
			}
		}},
		{"ok/header_map keeps repeated headers apart", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			h := httpOf(r)
			h.Headers = nil
			h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":authority", RawValue: []byte("api.example.com")},
				{Key: ":path", RawValue: []byte("/v1/accounts/42")},
				{Key: "Authorization", RawValue: []byte("DPoP t0k")},
				{Key: "dpop", RawValue: []byte("proof-1")},
				{Key: "dpop", RawValue: []byte("proof-2")},
				{Key: "accept", Value: "text/plain"},
			}}
			return r
		}, func(t *testing.T, r *decision.Request) {
			if !slices.Equal(r.Headers["dpop"], []string{"proof-1", "proof-2"}) || !slices.Equal(r.Headers["authorization"], []string{"DPoP t0k"}) ||
				!slices.Equal(r.Headers["accept"], []string{"text/plain"}) {
				t.Errorf("headers = %v", r.Headers)
			}
			if _, ok := r.Headers[":authority"]; ok {
				t.Error("a pseudo-header reached the policy")
			}
		}},
		{"ok/the source address is the remote IP, not X-Forwarded-For", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{"x-forwarded-for": "10.20.0.5", "x-real-ip": "10.20.0.5"})
			r.Attributes.Source.Address = socketAddress("::ffff:198.51.100.4", 1)
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.RemoteIP.String() != "198.51.100.4" {
				t.Errorf("remote IP = %v", r.RemoteIP)
			}
		}},
		{"ok/a pipe source has no remote IP", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/envoy.sock"}}}
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.RemoteIP.IsValid() {
				t.Errorf("remote IP = %v", r.RemoteIP)
			}
		}},
		{"ok/the forwarded peer certificate, URL-encoded PEM", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{"x-ssl-client-cert": "ignored", "x-forwarded-client-cert": "ignored"})
			r.Attributes.Source.Certificate = envoyEscape(certPEM)
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.ClientCertSHA256 != thumb {
				t.Errorf("x5t#S256 = %q, want %q", r.ClientCertSHA256, thumb)
			}
		}},
		{"ok/a client-sent certificate header is no certificate", func() *authv3.CheckRequest {
			return envoyRequest(map[string]string{"x-ssl-client-cert": url.QueryEscape(certPEM)})
		}, func(t *testing.T, r *decision.Request) {
			if r.ClientCertSHA256 != "" {
				t.Error("a certificate from a request header was believed")
			}
		}},
		{"ok/a form body", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{"content-type": "application/x-www-form-urlencoded; charset=UTF-8"})
			h := httpOf(r)
			h.Method, h.Body = "POST", "grant_type=refresh_token&refresh_token=rt%2B1&client_id=web"
			h.Size = int64(len(h.Body))
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != "rt+1" || r.Form.Get("client_id") != "web" {
				t.Errorf("form = %v", r.Form)
			}
		}},
		{"ok/a form body packed as bytes", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{"content-type": "application/x-www-form-urlencoded"})
			h := httpOf(r)
			h.Method, h.RawBody, h.Size = "POST", []byte("grant_type=client_credentials"), -1
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.Form.Get("grant_type") != "client_credentials" {
				t.Errorf("form = %v", r.Form)
			}
		}},
		{"ok/another content type's body is not read", func() *authv3.CheckRequest {
			r := envoyRequest(map[string]string{"content-type": "application/json"})
			h := httpOf(r)
			h.Method, h.Body = "POST", `{"grant_type":"refresh_token"}`
			return r
		}, func(t *testing.T, r *decision.Request) {
			if r.Form != nil {
				t.Errorf("form = %v", r.Form)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.check(t, tt.req())
			if resp.GetStatus().GetCode() != int32(code.Code_OK) {
				t.Fatalf("status = %v", resp.GetStatus())
			}
			tt.verify(t, rec.last(t))
		})
	}
}

// envoyEscape URL-encodes PEM the way Envoy does for
// attributes.source.certificate.
func envoyEscape(p string) string {
	return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(p)
}

func TestCheckRefusesMalformedRequests(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, rec, Options{})
	form := func(mut func(h *authv3.AttributeContext_HttpRequest)) *authv3.CheckRequest {
		r := envoyRequest(map[string]string{"content-type": "application/x-www-form-urlencoded"})
		h := r.Attributes.Request.Http
		h.Method, h.Body = "POST", "grant_type=refresh_token&refresh_token=abc"
		h.Size = int64(len(h.Body))
		mut(h)
		return r
	}
	manyHeaders := map[string]string{}
	for i := range decision.MaxHeaderCount + 1 {
		manyHeaders["x-h-"+strings.Repeat("a", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26%26))] = "v"
	}
	tests := []struct {
		name   string
		req    *authv3.CheckRequest
		status int32
	}{
		{"fail/no attributes", &authv3.CheckRequest{}, 400},
		{"fail/no HTTP request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, 400},
		{"fail/no host", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Host = ""
			delete(r.Attributes.Request.Http.Headers, ":authority")
			return r
		}(), 400},
		{"fail/a host that ends the authority early", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Host = "evil.example/x?"
			return r
		}(), 400},
		{"fail/a host with user information", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Host = "user@api.example.com"
			return r
		}(), 400},
		{"fail/an absolute-form path", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Path = "https://evil.example/x"
			return r
		}(), 400},
		{"fail/another scheme", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Scheme = "ftp"
			return r
		}(), 400},
		{"fail/no method", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Request.Http.Method = ""
			delete(r.Attributes.Request.Http.Headers, ":method")
			return r
		}(), 400},
		{"fail/too many headers", envoyRequest(manyHeaders), 400},
		{"fail/a header over the byte limit", envoyRequest(map[string]string{"authorization": "Bearer " + strings.Repeat("a", decision.MaxHeaderBytes)}), 400},
		{"fail/a certificate that is not one", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Source.Certificate = envoyEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
			return r
		}(), 400},
		{"fail/a certificate with a broken escape", func() *authv3.CheckRequest {
			r := envoyRequest(nil)
			r.Attributes.Source.Certificate = "%zz"
			return r
		}(), 400},
		{"fail/a form Envoy cut short (partial body header)", form(func(h *authv3.AttributeContext_HttpRequest) {
			h.Headers[partialBodyHeader] = "true"
		}), 413},
		{"fail/a form shorter than the request", form(func(h *authv3.AttributeContext_HttpRequest) { h.Size = 10_000 }), 413},
		{"fail/a form over the bound", form(func(h *authv3.AttributeContext_HttpRequest) {
			h.Body = "grant_type=x&pad=" + strings.Repeat("a", decision.MaxFormBytes)
			h.Size = int64(len(h.Body))
		}), 413},
		{"fail/a form that does not parse", form(func(h *authv3.AttributeContext_HttpRequest) {
			h.Body, h.Size = "a=%zz", 5
		}), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := rec.count()
			resp := ts.check(t, tt.req)
			d, body := deniedOf(t, resp)
			if int32(d.GetStatus().GetCode()) != tt.status {
				t.Errorf("HTTP status = %d, want %d", d.GetStatus().GetCode(), tt.status)
			}
			if resp.GetStatus().GetCode() != int32(code.Code_INVALID_ARGUMENT) {
				t.Errorf("gRPC status = %v", resp.GetStatus())
			}
			if body.Error != "invalid_request" || !slices.Equal(body.Reasons, []string{decision.CodeRequestInvalid}) || body.DecisionID == "" || body.Description == "" {
				t.Errorf("body = %+v", body)
			}
			if rec.count() != before {
				t.Error("a malformed request reached the decider")
			}
		})
	}
}

func TestCheckAnswersAnAllow(t *testing.T) {
	rec := answering(decision.Decision{
		Allow: true, Status: 200, Reasons: []policy.Reason{}, Warnings: []policy.Reason{},
		Headers: map[string]string{"dpop-nonce": "n-1"},
		UpstreamHeaders: map[string]string{
			"x-tokenguard-subject": "alice", "x-tokenguard-scopes": "accounts:read", "x-tokenguard-client-id": "web",
			"x-tokenguard-bad": "a\r\nx-injected: 1", "bad name": "x",
		},
	}, nil)
	ts := startServer(t, rec, Options{})
	resp := ts.check(t, envoyRequest(map[string]string{
		"authorization":        "Bearer t0k",
		"x-tokenguard-subject": "admin", // forged: overwritten
		"x-tokenguard-roles":   "admin", // forged: removed
		"x-tokenguard-bad":     "forged",
	}))
	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		t.Fatalf("status = %v", resp.GetStatus())
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("no OK response: %v", resp)
	}
	for name, want := range map[string]string{"x-tokenguard-subject": "alice", "x-tokenguard-scopes": "accounts:read", "x-tokenguard-client-id": "web"} {
		got, overwrites, found := headerOf(ok.GetHeaders(), name)
		if !found || got != want || !overwrites {
			t.Errorf("%s = %q (found %v, overwrites %v), want %q overwriting", name, got, found, overwrites, want)
		}
	}
	if id, _, found := headerOf(ok.GetHeaders(), DecisionIDHeader); !found || len(id) != 32 {
		t.Errorf("decision id header = %q", id)
	}
	if _, _, found := headerOf(ok.GetHeaders(), "x-tokenguard-bad"); found {
		t.Error("a header value with CR LF was sent upstream")
	}
	if _, _, found := headerOf(ok.GetHeaders(), "bad name"); found {
		t.Error("a header with an invalid name was sent upstream")
	}
	if got := ok.GetHeadersToRemove(); !slices.Equal(got, []string{"x-tokenguard-bad", "x-tokenguard-roles"}) {
		t.Errorf("headers to remove = %v, want the forged x-tokenguard-* headers not set", got)
	}
	if v, overwrites, found := headerOf(ok.GetResponseHeadersToAdd(), "dpop-nonce"); !found || v != "n-1" || !overwrites {
		t.Errorf("response headers = %v", ok.GetResponseHeadersToAdd())
	}
}

func TestCheckAnswersDenies(t *testing.T) {
	tests := []struct {
		name      string
		dec       decision.Decision
		err       error
		status    int32
		grpc      code.Code
		errorCode string
		reasons   []string
		headers   map[string]string
	}{
		{"fail/401 with the challenge error", decision.Decision{Status: 401,
			Reasons: []policy.Reason{{Code: "token_expired"}, {Code: "lifetime_exceeded"}},
			Headers: map[string]string{"www-authenticate": `Bearer realm="tokenguard", error="invalid_token", error_description="the token expired"`}},
			nil, 401, code.Code_UNAUTHENTICATED, "invalid_token", []string{"token_expired", "lifetime_exceeded"},
			map[string]string{"www-authenticate": `Bearer realm="tokenguard", error="invalid_token", error_description="the token expired"`}},
		{"fail/401 bare challenge names the reason", decision.Decision{Status: 401,
			Reasons: []policy.Reason{{Code: "token_missing"}},
			Headers: map[string]string{"www-authenticate": `Bearer realm="tokenguard"`}},
			nil, 401, code.Code_UNAUTHENTICATED, "token_missing", []string{"token_missing"},
			map[string]string{"www-authenticate": `Bearer realm="tokenguard"`}},
		{"fail/401 DPoP challenge with a nonce", decision.Decision{Status: 401,
			Reasons: []policy.Reason{{Code: "dpop_nonce_required"}},
			Headers: map[string]string{"www-authenticate": `DPoP algs="ES256", error="use_dpop_nonce"`, "dpop-nonce": "n-2"}},
			nil, 401, code.Code_UNAUTHENTICATED, "use_dpop_nonce", []string{"dpop_nonce_required"},
			map[string]string{"www-authenticate": `DPoP algs="ES256", error="use_dpop_nonce"`, "dpop-nonce": "n-2"}},
		{"fail/403 insufficient scope", decision.Decision{Status: 403,
			Reasons: []policy.Reason{{Code: "scope_insufficient"}},
			Headers: map[string]string{"www-authenticate": `Bearer realm="tokenguard", error="insufficient_scope", scope="accounts:read"`}},
			nil, 403, code.Code_PERMISSION_DENIED, "insufficient_scope", []string{"scope_insufficient"}, nil},
		{"fail/400 at the token endpoint", decision.Decision{Status: 400, Reasons: []policy.Reason{{Code: "refresh_token_reused"}}},
			nil, 400, code.Code_INVALID_ARGUMENT, "refresh_token_reused", []string{"refresh_token_reused"}, nil},
		{"fail/a decision error is a 500 deny, never OK", decision.Decision{Allow: true, Status: 200,
			Headers: map[string]string{"www-authenticate": "x"}}, errors.New("eval: boom"),
			500, code.Code_INTERNAL, decision.CodePolicyError, []string{decision.CodePolicyError}, nil},
		{"fail/a status Envoy does not know is a 403", decision.Decision{Status: 299, Reasons: []policy.Reason{{Code: "odd"}}},
			nil, 403, code.Code_PERMISSION_DENIED, "odd", []string{"odd"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, answering(tt.dec, tt.err), Options{})
			resp := ts.check(t, envoyRequest(map[string]string{"authorization": "Bearer t0k"}))
			d, body := deniedOf(t, resp)
			if int32(d.GetStatus().GetCode()) != tt.status || resp.GetStatus().GetCode() != int32(tt.grpc) {
				t.Errorf("status = HTTP %d gRPC %v, want %d %v", d.GetStatus().GetCode(), resp.GetStatus(), tt.status, tt.grpc)
			}
			if body.Error != tt.errorCode || !slices.Equal(body.Reasons, tt.reasons) || len(body.DecisionID) != 32 {
				t.Errorf("body = %+v", body)
			}
			for name, want := range tt.headers {
				if got, overwrites, _ := headerOf(d.GetHeaders(), name); got != want || !overwrites {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.err != nil {
				if _, _, found := headerOf(d.GetHeaders(), "www-authenticate"); found {
					t.Error("a failed decision's headers were sent")
				}
			}
			if ct, _, _ := headerOf(d.GetHeaders(), "content-type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			if cc, _, _ := headerOf(d.GetHeaders(), "cache-control"); cc != "no-store" {
				t.Errorf("cache-control = %q", cc)
			}
		})
	}
	t.Run("fail/no decision at all", func(t *testing.T) {
		ts := startServer(t, &recorder{answer: func(*decision.Request) (*decision.Decision, error) { return nil, nil }}, Options{})
		d, body := deniedOf(t, ts.check(t, envoyRequest(nil)))
		if d.GetStatus().GetCode() != 500 || body.Reasons[0] != decision.CodePolicyError {
			t.Errorf("= %d %+v", d.GetStatus().GetCode(), body)
		}
	})
	t.Run("fail/a panicking decider", func(t *testing.T) {
		ts := startServer(t, &recorder{answer: func(*decision.Request) (*decision.Decision, error) { panic("boom") }}, Options{})
		d, _ := deniedOf(t, ts.check(t, envoyRequest(nil)))
		if d.GetStatus().GetCode() != 500 {
			t.Errorf("status = %d", d.GetStatus().GetCode())
		}
	})
}

func TestCheckNeverLogsTheToken(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	const tok, proof = "eyJhbGciOiJFUzI1NiJ9.secret-token.sig", "eyJ0eXAiOiJkcG9wK2p3dCJ9.secret-proof.sig"
	for _, d := range []*recorder{
		answering(decision.Decision{Allow: true, Status: 200}, nil),
		answering(decision.Decision{Status: 401, Reasons: []policy.Reason{{Code: "token_expired"}}}, nil),
		answering(decision.Decision{}, errors.New("the policy failed")),
		{answer: func(*decision.Request) (*decision.Decision, error) { panic("boom") }},
	} {
		ts := startServer(t, d, Options{Logger: logger})
		resp := ts.check(t, envoyRequest(map[string]string{"authorization": "DPoP " + tok, "dpop": proof}))
		if strings.Contains(resp.String(), "secret-") {
			t.Errorf("the response echoes a credential: %v", resp)
		}
	}
	if strings.Contains(logs.String(), "secret-") {
		t.Errorf("the log holds a credential: %s", logs.String())
	}
}

func TestCheckBoundsTheMessageSize(t *testing.T) {
	rec := &recorder{}
	ts := startServer(t, rec, Options{})
	_, err := ts.auth.Check(t.Context(), envoyRequest(map[string]string{"x-big": strings.Repeat("a", DefaultMaxRecvMsgSize)}))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a check over 1 MiB: %v, want ResourceExhausted", err)
	}
	if rec.count() != 0 {
		t.Error("an oversized check reached the decider")
	}
}

func TestCheckAuthenticatesTheGateway(t *testing.T) {
	t.Run("shared credential", func(t *testing.T) {
		rec := &recorder{}
		ts := startServer(t, rec, Options{Credential: "gw-s3cret"})
		for name, md := range map[string]metadata.MD{
			"fail/without the credential": nil,
			"fail/a wrong credential":     metadata.Pairs(GatewayMetadata, "guess"),
			"fail/two credentials":        metadata.Pairs(GatewayMetadata, "gw-s3cret", GatewayMetadata, "guess"),
		} {
			t.Run(name, func(t *testing.T) {
				ctx := metadata.NewOutgoingContext(t.Context(), md)
				resp, err := ts.auth.Check(ctx, envoyRequest(nil))
				if err != nil {
					t.Fatal(err)
				}
				d, body := deniedOf(t, resp)
				if d.GetStatus().GetCode() != 500 || body.Reasons[0] != CodeGatewayUnauthenticated {
					t.Errorf("= %d %+v", d.GetStatus().GetCode(), body)
				}
			})
		}
		if rec.count() != 0 {
			t.Error("an unauthenticated caller reached the decider")
		}
		t.Run("ok/with the credential", func(t *testing.T) {
			ctx := metadata.NewOutgoingContext(t.Context(), metadata.Pairs(GatewayMetadata, "gw-s3cret"))
			resp, err := ts.auth.Check(ctx, envoyRequest(nil))
			if err != nil || resp.GetStatus().GetCode() != 0 {
				t.Fatalf("= %v %v", resp, err)
			}
		})
	})
	t.Run("client certificate", func(t *testing.T) {
		_, _, ca := selfSigned(t, "gateway-ca", true, nil)
		_, _, serverCert := selfSigned(t, "127.0.0.1", false, &ca)
		_, _, gateway := selfSigned(t, "gateway", false, &ca)
		_, _, stranger := selfSigned(t, "stranger", false, nil)
		pool := x509.NewCertPool()
		pool.AddCert(ca.Leaf)
		opts := Options{TLS: &tls.Config{
			MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{serverCert},
			ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
		}}
		t.Run("ok/a verified gateway certificate", func(t *testing.T) {
			ts := startServer(t, &recorder{}, opts, tlsDial(&ca, &gateway))
			if resp := ts.check(t, envoyRequest(nil)); resp.GetStatus().GetCode() != 0 {
				t.Errorf("= %v", resp)
			}
		})
		t.Run("fail/no client certificate", func(t *testing.T) {
			ts := startServer(t, &recorder{}, opts, tlsDial(&ca, nil))
			if _, body := deniedOf(t, ts.check(t, envoyRequest(nil))); body.Reasons[0] != CodeGatewayUnauthenticated {
				t.Errorf("body = %+v", body)
			}
		})
		t.Run("fail/a certificate of another CA", func(t *testing.T) {
			ts := startServer(t, &recorder{}, opts, tlsDial(&ca, &stranger))
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if resp, err := ts.auth.Check(ctx, envoyRequest(nil)); err == nil && resp.GetStatus().GetCode() == 0 {
				t.Error("a certificate of another CA was admitted")
			}
		})
	})
}

func TestServeDrainsInFlightChecks(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	rec := &recorder{answer: func(*decision.Request) (*decision.Decision, error) {
		close(entered)
		<-release
		return &decision.Decision{Allow: true, Status: 200}, nil
	}}
	ts := startServer(t, rec, Options{DrainTimeout: 10 * time.Second})
	got := make(chan *authv3.CheckResponse, 1)
	go func() {
		resp, _ := ts.auth.Check(context.Background(), envoyRequest(nil))
		got <- resp
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	select {
	case <-stopped:
		t.Fatal("Serve returned with a check in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if resp := <-got; resp.GetStatus().GetCode() != 0 {
		t.Errorf("the in-flight check = %v, want its answer", resp)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestCheckWarnsOnceWhenEnvoyKeepsFormBodies(t *testing.T) {
	var logs bytes.Buffer
	ts := startServer(t, &recorder{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 2 {
		r := envoyRequest(map[string]string{"content-type": "application/x-www-form-urlencoded"})
		r.Attributes.Request.Http.Method, r.Attributes.Request.Http.Size = "POST", 42
		if resp := ts.check(t, r); resp.GetStatus().GetCode() != 0 {
			t.Fatalf("= %v", resp)
		}
	}
	if n := strings.Count(logs.String(), "with_request_body"); n != 1 {
		t.Errorf("%d warnings, want 1: %s", n, logs.String())
	}
}
