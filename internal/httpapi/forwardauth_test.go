package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

// allowing is a Decider that records the request and allows it with
// upstream headers.
type allowing struct{ got *decision.Request }

func (a *allowing) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	a.got = req
	return &decision.Decision{Allow: true, Status: 200, UpstreamHeaders: map[string]string{"x-tokenguard-scopes": "accounts:read"}}, nil
}

func testCert(t *testing.T) []byte {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestForwardAuthReadsTheOriginalRequest(t *testing.T) {
	der := testCert(t)
	pemCert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name       string
		peer       string
		headers    map[string]string
		wantURL    string
		wantMethod string
		wantIP     string
		wantCert   bool
	}{
		{"ok/nginx auth_request from a trusted gateway", "10.1.2.3:5000", map[string]string{
			"X-Original-Method": "DELETE", "X-Original-URI": "/v1/accounts/42?x=1", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "api.example.com", "X-Real-IP": "203.0.113.7", "X-SSL-Client-Cert": url.QueryEscape(pemCert),
		}, "https://api.example.com/v1/accounts/42?x=1", "DELETE", "203.0.113.7", true},
		{"ok/traefik forwardauth from a trusted gateway", "10.9.9.9:5000", map[string]string{
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/accounts/7", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "api.example.com", "X-Forwarded-For": "198.51.100.2, 10.9.9.9",
			"X-Forwarded-Tls-Client-Cert": base64.StdEncoding.EncodeToString(der),
		}, "https://api.example.com/v1/accounts/7", "GET", "198.51.100.2", true},
		{"fail/spoofed X-Forwarded-For from an untrusted peer is ignored", "192.0.2.50:5000", map[string]string{
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/accounts/7", "X-Forwarded-Host": "api.example.com",
			"X-Forwarded-For": "10.20.0.1", "X-Real-IP": "10.20.0.1",
		}, "https://api.example.com/v1/accounts/7", "GET", "192.0.2.50", false},
		{"fail/spoofed client certificate from an untrusted peer is ignored", "192.0.2.50:5000", map[string]string{
			"X-Original-URI": "/v1/accounts/7", "X-Forwarded-Host": "api.example.com", "X-SSL-Client-Cert": url.QueryEscape(pemCert),
		}, "https://api.example.com/v1/accounts/7", "GET", "192.0.2.50", false},
		{"ok/the shared gateway credential makes forwarded values trusted", "192.0.2.50:5000", map[string]string{
			"X-Original-URI": "/v1/accounts/7", "X-Forwarded-Host": "api.example.com", "X-Real-IP": "203.0.113.9",
			GatewayHeader: "gw-secret",
		}, "https://api.example.com/v1/accounts/7", "GET", "203.0.113.9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &allowing{}
			h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{TrustedProxies: trusted, Credential: "gw-secret"}})
			req := httptest.NewRequest(http.MethodGet, "/v1/forward-auth", nil)
			req.RemoteAddr = tt.peer
			req.Header.Set("Authorization", "Bearer abc")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Header().Get("X-Tokenguard-Scopes") != "accounts:read" {
				t.Fatalf("answer = %d %v", rec.Code, rec.Header())
			}
			g := a.got
			if g.URL.String() != tt.wantURL || g.Method != tt.wantMethod || g.RemoteIP.String() != tt.wantIP || (g.ClientCertSHA256 != "") != tt.wantCert {
				t.Errorf("request = %s %s ip=%s cert=%q", g.Method, g.URL, g.RemoteIP, g.ClientCertSHA256)
			}
			if g.Headers["authorization"][0] != "Bearer abc" {
				t.Error("the original Authorization header did not reach the decision")
			}
			for _, name := range []string{"x-forwarded-for", "x-real-ip", "x-ssl-client-cert", "x-tokenguard-gateway"} {
				if _, ok := g.Headers[name]; ok {
					t.Errorf("forwarding header %s reached the policy as a request header", name)
				}
			}
		})
	}
}

// denying denies with a challenge.
type denying struct{}

func (denying) Decide(context.Context, *decision.Request) (*decision.Decision, error) {
	return &decision.Decision{Status: 403, Reasons: []policy.Reason{{Code: "scope_insufficient"}},
		Headers: map[string]string{"www-authenticate": `Bearer error="insufficient_scope"`}}, nil
}

func TestForwardAuthDenyAndRefusals(t *testing.T) {
	h := New(Options{Decider: denying{}, ForwardAuth: &ForwardAuth{}})
	req := httptest.NewRequest(http.MethodGet, "/v1/forward-auth", nil)
	req.Header.Set("X-Original-URI", "/v1/accounts/1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 403 || rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("X-Decision-Id") == "" {
		t.Errorf("deny = %d %v", rec.Code, rec.Header())
	}
	req = httptest.NewRequest(http.MethodGet, "/v1/forward-auth", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("no original URI = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestGatewayAuthGuardsTheDecisionEndpoints(t *testing.T) {
	h := New(Options{Decider: &allowing{}, Gateway: GatewayAuth{Credential: "gw"}, ForwardAuth: &ForwardAuth{}})
	for _, tt := range []struct {
		name, path, cred string
		status           int
	}{
		{"fail/decide without the gateway credential", "/v1/decide", "", 401},
		{"fail/forward-auth with a wrong credential", "/v1/forward-auth", "nope", 401},
		{"ok/forward-auth with the credential", "/v1/forward-auth", "gw", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tt.path, nil)
			req.Header.Set("X-Original-URI", "/v1/accounts/1")
			if tt.cred != "" {
				req.Header.Set(GatewayHeader, tt.cred)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("%s = %d, want %d", tt.path, rec.Code, tt.status)
			}
		})
	}
}
