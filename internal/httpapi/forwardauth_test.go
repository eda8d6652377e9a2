package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
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

// gatewayHeaders are the headers each gateway sets on its auth request for
// the client request DELETE https://api.example.com/v1/accounts/42 from
// 203.0.113.7, and spoofs are the other family's headers, as a client sends
// them: a GET of another path, from an address inside an allow-list.
var (
	gatewayHeaders = map[Style]http.Header{
		StyleNginx: {"X-Original-Method": {"DELETE"}, "X-Original-Uri": {"/v1/accounts/42"}, "X-Original-Proto": {"https"},
			"X-Real-Ip": {"203.0.113.7"}},
		StyleTraefik: {"X-Forwarded-Method": {"DELETE"}, "X-Forwarded-Uri": {"/v1/accounts/42"}, "X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-For": {"203.0.113.7"}},
	}
	spoofs = map[Style]http.Header{
		StyleNginx: {"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/v1/admin/users"}, "X-Forwarded-Proto": {"http"},
			"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-For": {"10.20.1.1"}},
		StyleTraefik: {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/v1/admin/users"}, "X-Original-Proto": {"http"},
			"X-Original-Host": {"evil.example"}, "X-Real-Ip": {"10.20.1.1"}, "X-Original-Url": {"http://evil.example/v1/admin/users"}},
	}
)

func init() {
	gatewayHeaders[StyleCaddy] = gatewayHeaders[StyleTraefik]
	spoofs[StyleCaddy] = spoofs[StyleTraefik]
}

// forwardAuthRequest is an auth request to /v1/forward-auth from peer,
// with the given header sets, as the gateway's Host would be.
func forwardAuthRequest(peer string, sets ...http.Header) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/v1/forward-auth", nil)
	req.RemoteAddr = peer
	req.Host = "api.example.com"
	req.Header.Set("Authorization", "Bearer abc")
	for _, set := range sets {
		for k, vs := range set {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	return req
}

// TestForwardAuthReadsOneHeaderContractFromTrustedGateways runs every
// style against its own header family, the other one, and both, from a
// trusted proxy, an untrusted peer, and an untrusted peer with the gateway
// credential. Only the style's own family counts, and only from a trusted
// gateway; anything else is a 400 problem, never a decision about a request
// the client described.
func TestForwardAuthReadsOneHeaderContractFromTrustedGateways(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	peers := []struct {
		name, addr, cred string
		trusted          bool
	}{
		{"trusted proxy", "10.1.2.3:5000", "", true},
		{"untrusted peer", "192.0.2.50:5000", "", false},
		{"untrusted peer with a wrong credential", "192.0.2.50:5000", "nope", false},
		{"untrusted peer with the gateway credential", "192.0.2.50:5000", "gw-secret", true},
	}
	for _, style := range []Style{StyleNginx, StyleTraefik, StyleCaddy} {
		families := []struct {
			name string
			sets []http.Header
			read bool
		}{
			{"own family", []http.Header{gatewayHeaders[style]}, true},
			{"other family alone", []http.Header{spoofs[style]}, false},
			{"client-supplied other family alongside", []http.Header{gatewayHeaders[style], spoofs[style]}, true},
		}
		for _, fam := range families {
			for _, peer := range peers {
				ok := fam.read && peer.trusted
				name := fmt.Sprintf("fail/%s/%s/%s", style, fam.name, peer.name)
				if ok {
					name = fmt.Sprintf("ok/%s/%s/%s", style, fam.name, peer.name)
				}
				t.Run(name, func(t *testing.T) {
					a := &allowing{}
					h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{Style: style, TrustedProxies: trusted, Credential: "gw-secret"}})
					req := forwardAuthRequest(peer.addr, fam.sets...)
					if peer.cred != "" {
						req.Header.Set(GatewayHeader, peer.cred)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if !ok {
						if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" || a.got != nil {
							t.Fatalf("answer = %d %s, decided %v", rec.Code, rec.Header().Get("Content-Type"), a.got)
						}
						return
					}
					if rec.Code != 200 {
						t.Fatalf("answer = %d %s", rec.Code, rec.Body)
					}
					g := a.got
					if g.Method != "DELETE" || g.URL.String() != "https://api.example.com/v1/accounts/42" || g.RemoteIP.String() != "203.0.113.7" {
						t.Errorf("decided %s %s for %s, want DELETE https://api.example.com/v1/accounts/42 for 203.0.113.7", g.Method, g.URL, g.RemoteIP)
					}
					if g.Headers["authorization"][0] != "Bearer abc" {
						t.Error("the original Authorization header did not reach the decision")
					}
					for name := range g.Headers {
						if forwardHeaders[name] || strings.HasPrefix(name, upstreamPrefix) {
							t.Errorf("forwarding header %s reached the policy as a request header", name)
						}
					}
				})
			}
		}
	}
}

// TestForwardAuthClientAddressAndCertificate: the client address and
// certificate come only from the header the configured gateway sets; a
// header the gateway passes through from the client never counts.
func TestForwardAuthClientAddressAndCertificate(t *testing.T) {
	der := testCert(t)
	pemCert := url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	b64Cert := base64.StdEncoding.EncodeToString(der)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	many := strings.TrimSuffix(strings.Repeat("198.51.100.1, ", 65), ", ")
	manyTrusted := strings.TrimSuffix(strings.Repeat("10.9.9.9, ", 65), ", ")
	long := strings.Repeat("1", 9<<10)
	tests := []struct {
		name     string
		style    Style
		peer     string
		headers  http.Header
		wantIP   string
		wantCert bool
	}{
		{"ok/nginx X-Real-IP", StyleNginx, "10.1.2.3:1", http.Header{"X-Real-Ip": {"203.0.113.7"}}, "203.0.113.7", false},
		{"fail/nginx X-Forwarded-For is never read", StyleNginx, "10.1.2.3:1", http.Header{"X-Forwarded-For": {"10.20.1.1"}}, "", false},
		{"fail/nginx X-Real-IP sent twice is no address", StyleNginx, "10.1.2.3:1", http.Header{"X-Real-Ip": {"203.0.113.7", "10.20.1.1"}}, "", false},
		{"ok/nginx X-SSL-Client-Cert", StyleNginx, "10.1.2.3:1", http.Header{"X-Real-Ip": {"203.0.113.7"}, "X-Ssl-Client-Cert": {pemCert}}, "203.0.113.7", true},
		{"fail/nginx X-Forwarded-Tls-Client-Cert is never read", StyleNginx, "10.1.2.3:1", http.Header{"X-Real-Ip": {"203.0.113.7"}, "X-Forwarded-Tls-Client-Cert": {b64Cert}}, "203.0.113.7", false},
		{"fail/nginx X-Client-Cert is never read", StyleNginx, "10.1.2.3:1", http.Header{"X-Real-Ip": {"203.0.113.7"}, "X-Client-Cert": {pemCert}}, "203.0.113.7", false},
	}
	for _, style := range []Style{StyleTraefik, StyleCaddy} {
		tests = append(tests, []struct {
			name     string
			style    Style
			peer     string
			headers  http.Header
			wantIP   string
			wantCert bool
		}{
			{"fail/" + string(style) + " client X-Real-IP is never read (Caddy passes it through)", style, "10.1.2.3:1",
				http.Header{"X-Real-Ip": {"10.20.1.1"}, "X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", false},
			{"fail/" + string(style) + " client X-Real-IP without X-Forwarded-For is no address", style, "10.1.2.3:1",
				http.Header{"X-Real-Ip": {"10.20.1.1"}}, "", false},
			{"ok/" + string(style) + " right-most hop the gateway appended", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"10.20.1.1, 203.0.113.7"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " trusted hops are skipped", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"10.20.1.1", "203.0.113.7, 10.9.9.9"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " all hops trusted: the left-most", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"10.20.1.1, 10.9.9.9"}}, "10.20.1.1", false},
			{"ok/" + string(style) + " a hop's port is dropped (a trusted hop stays trusted)", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"203.0.113.7, 10.20.1.1:80"}}, "203.0.113.7", false},
			{"fail/" + string(style) + " too many trusted hops is no address", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {manyTrusted}}, "", false},
			// A client's own hops (left of the one the gateway appended)
			// must not take the address away: without one the
			// fingerprint compares user agents only.
			{"ok/" + string(style) + " client prepends 65 hops: still the hop the gateway appended", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {many + ", 203.0.113.7"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " client prepends 65 hops in their own header: still the gateway's", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {many, "203.0.113.7"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " client prepends a 9 KiB hop: still the hop the gateway appended", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {long + ", 203.0.113.7"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " client prepends garbage and a zone: still the hop the gateway appended", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"x, fe80::1%eth0,, 203.0.113.7"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " client hops past trusted ones: the first untrusted from the right", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {many + ", 203.0.113.7, 10.9.9.9"}}, "203.0.113.7", false},
			{"ok/" + string(style) + " IPv6 hop", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7", false},
			{"ok/" + string(style) + " X-Forwarded-Tls-Client-Cert", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Tls-Client-Cert": {b64Cert}}, "203.0.113.7", true},
			{"ok/" + string(style) + " URL-escaped X-Forwarded-Tls-Client-Cert (Traefik v2)", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Tls-Client-Cert": {url.QueryEscape(b64Cert)}}, "203.0.113.7", true},
			{"fail/" + string(style) + " X-SSL-Client-Cert is never read", style, "10.1.2.3:1",
				http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Ssl-Client-Cert": {pemCert}}, "203.0.113.7", false},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &allowing{}
			h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{Style: tt.style, TrustedProxies: trusted}})
			line := http.Header{}
			for k, v := range gatewayHeaders[tt.style] {
				if k != "X-Real-Ip" && k != "X-Forwarded-For" {
					line[k] = v
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, forwardAuthRequest(tt.peer, line, tt.headers))
			if rec.Code != 200 {
				t.Fatalf("answer = %d %s", rec.Code, rec.Body)
			}
			ip := ""
			if a.got.RemoteIP.IsValid() {
				ip = a.got.RemoteIP.String()
			}
			if ip != tt.wantIP || (a.got.ClientCertSHA256 != "") != tt.wantCert {
				t.Errorf("client = %q cert %q, want %q cert %v", ip, a.got.ClientCertSHA256, tt.wantIP, tt.wantCert)
			}
		})
	}
}

// TestForwardAuthRefusesAmbiguousRequestLines: every request-line header is
// required, sent once and well-formed.
func TestForwardAuthRefusesAmbiguousRequestLines(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	with := func(style Style, k string, v ...string) http.Header {
		h := gatewayHeaders[style].Clone()
		if v == nil {
			h.Del(k)
		} else {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name    string
		style   Style
		headers http.Header
	}{
		{"fail/nginx X-Original-Method missing (never the auth request's own method)", StyleNginx, with(StyleNginx, "X-Original-Method")},
		{"fail/nginx X-Original-URI missing", StyleNginx, with(StyleNginx, "X-Original-Uri")},
		{"fail/nginx X-Original-Proto missing", StyleNginx, with(StyleNginx, "X-Original-Proto")},
		{"fail/nginx X-Original-URI sent twice", StyleNginx, with(StyleNginx, "X-Original-Uri", "/v1/accounts/42", "/v1/admin/users")},
		{"fail/nginx X-Original-Method sent twice", StyleNginx, with(StyleNginx, "X-Original-Method", "DELETE", "GET")},
		{"fail/nginx X-Original-URI not a path", StyleNginx, with(StyleNginx, "X-Original-Uri", "http://evil.example/x")},
		{"fail/nginx X-Original-Proto not http(s)", StyleNginx, with(StyleNginx, "X-Original-Proto", "javascript")},
		{"fail/nginx X-Original-URI too long", StyleNginx, with(StyleNginx, "X-Original-Uri", "/"+strings.Repeat("a", maxForwardedValue))},
		{"fail/traefik X-Forwarded-Method missing", StyleTraefik, with(StyleTraefik, "X-Forwarded-Method")},
		{"fail/traefik X-Forwarded-Host missing", StyleTraefik, with(StyleTraefik, "X-Forwarded-Host")},
		{"fail/traefik X-Forwarded-Host with userinfo", StyleTraefik, with(StyleTraefik, "X-Forwarded-Host", "api.example.com@evil.example")},
		{"fail/traefik X-Forwarded-Host with a path", StyleTraefik, with(StyleTraefik, "X-Forwarded-Host", "evil.example/v1")},
		{"fail/caddy X-Forwarded-Uri sent twice", StyleCaddy, with(StyleCaddy, "X-Forwarded-Uri", "/v1/accounts/42", "/v1/admin/users")},
		{"fail/caddy X-Forwarded-Method not a method", StyleCaddy, with(StyleCaddy, "X-Forwarded-Method", "GET /v1/admin")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &allowing{}
			h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{Style: tt.style, TrustedProxies: trusted}})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, forwardAuthRequest("10.1.2.3:1", tt.headers))
			if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" || a.got != nil {
				t.Fatalf("answer = %d %s, decided %v", rec.Code, rec.Body, a.got)
			}
		})
	}
}

// TestForwardAuthAllowCarriesEveryUpstreamHeader: an allow names every
// upstream header, empty when it does not apply, so a gateway copying them
// overwrites whatever the client sent under the same name.
func TestForwardAuthAllowCarriesEveryUpstreamHeader(t *testing.T) {
	a := &allowing{}
	srv := httptest.NewServer(New(Options{Decider: a, ForwardAuth: &ForwardAuth{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/forward-auth", nil)
	for k, v := range gatewayHeaders[StyleNginx] {
		req.Header[k] = v
	}
	req.Header.Set("X-Tokenguard-Actor", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("answer = %d", resp.StatusCode)
	}
	for _, name := range UpstreamHeaders {
		vals, ok := resp.Header[name]
		want := ""
		if name == "X-Tokenguard-Scopes" {
			want = "accounts:read"
		}
		if !ok || len(vals) != 1 || vals[0] != want {
			t.Errorf("%s = %q (present %v), want %q", name, vals, ok, want)
		}
	}
	if _, seen := a.got.Headers["x-tokenguard-actor"]; seen {
		t.Error("the client's X-Tokenguard-Actor reached the policy")
	}
}

// denying denies with a challenge.
type denying struct{}

func (denying) Decide(context.Context, *decision.Request) (*decision.Decision, error) {
	return &decision.Decision{Status: 403, Reasons: []policy.Reason{{Code: "scope_insufficient"}},
		Headers: map[string]string{"www-authenticate": `Bearer error="insufficient_scope"`}}, nil
}

func TestForwardAuthDenyAndRefusals(t *testing.T) {
	h := New(Options{Decider: denying{}, ForwardAuth: &ForwardAuth{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}})
	req := forwardAuthRequest("192.0.2.1:1", gatewayHeaders[StyleNginx])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 403 || rec.Header().Get("WWW-Authenticate") == "" || rec.Header().Get("X-Decision-Id") == "" {
		t.Errorf("deny = %d %v", rec.Code, rec.Header())
	}
	req = forwardAuthRequest("192.0.2.1:1")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("no original URI = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestGatewayAuthGuardsTheDecisionEndpoints(t *testing.T) {
	h := New(Options{Decider: &allowing{}, Gateway: GatewayAuth{Credential: "gw"}, ForwardAuth: &ForwardAuth{Credential: "gw"}})
	for _, tt := range []struct {
		name, path, cred string
		status           int
	}{
		{"fail/decide without the gateway credential", "/v1/decide", "", 401},
		{"fail/forward-auth with a wrong credential", "/v1/forward-auth", "nope", 401},
		{"ok/forward-auth with the credential", "/v1/forward-auth", "gw", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := forwardAuthRequest("192.0.2.1:1", gatewayHeaders[StyleNginx])
			req.Method, req.URL.Path = http.MethodPost, tt.path
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

// FuzzForwardAuthHeaders feeds arbitrary values of both header families to
// /v1/forward-auth under each style: it must never panic, must answer a
// decision or a problem, must refuse an untrusted peer, and must decide
// only on the style's own family: the method it names, and a client address
// that is the gateway's report (never the other family's, never the peer's).
func FuzzForwardAuthHeaders(f *testing.F) {
	f.Add(uint8(0), true, "DELETE", "/v1/accounts/42", "https", "api.example.com", "GET", "/v1/admin/users", "10.20.1.1", "203.0.113.7", "")
	f.Add(uint8(1), true, "DELETE", "/v1/accounts/42", "https", "api.example.com", "GET", "/v1/admin/users", "10.20.1.1", "10.20.1.1, 203.0.113.7", "")
	f.Add(uint8(2), true, "GET", "/v1/accounts/42?x=1", "HTTP", "api.example.com:8443", "DELETE", "/v1/accounts/42", "10.20.1.1", "10.1.1.1, 10.9.9.9", "AAAA")
	f.Add(uint8(2), false, "GET", "/v1/accounts/42", "https", "api.example.com", "GET", "/v1/admin/users", "10.20.1.1", "203.0.113.7", "")
	f.Add(uint8(0), true, "GET /x", "http://evil.example/x", "javascript", "a@evil.example", "", "", "::1%eth0", "203.0.113.7:80", "%zz")
	f.Add(uint8(1), true, "GET", "//evil.example/x", "https", "[::1]", "GET", "/", "", ",,,", "")
	f.Add(uint8(2), true, "GET", "/v1/accounts/42", "https", "api.example.com", "GET", "/", "", strings.Repeat("198.51.100.1, ", 65)+"203.0.113.7", "")
	f.Add(uint8(1), true, "GET", "/v1/accounts/42", "https", "api.example.com", "GET", "/", "", "x, fe80::1%eth0,, 203.0.113.7, 10.1.9.9", "")
	f.Fuzz(func(t *testing.T, which uint8, trusted bool, method, uri, proto, host, otherMethod, otherURI, realIP, xff, cert string) {
		styles := []Style{StyleNginx, StyleTraefik, StyleCaddy}
		style := styles[int(which)%len(styles)]
		a := &allowing{}
		h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{Style: style, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}})
		peer := "10.1.2.3:1"
		if !trusted {
			peer = "192.0.2.50:1"
		}
		req := forwardAuthRequest(peer)
		own, other := []string{"X-Original-Method", "X-Original-Uri", "X-Original-Proto"}, []string{"X-Forwarded-Method", "X-Forwarded-Uri"}
		if style != StyleNginx {
			own, other = []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Proto"}, []string{"X-Original-Method", "X-Original-Uri"}
			req.Header["X-Forwarded-Host"] = []string{host}
		} else {
			req.Host = host
		}
		for i, v := range []string{method, uri, proto} {
			req.Header[own[i]] = []string{v}
		}
		for i, v := range []string{otherMethod, otherURI} {
			req.Header[other[i]] = []string{v}
		}
		req.Header["X-Real-Ip"] = []string{realIP}
		req.Header["X-Forwarded-For"] = []string{xff}
		req.Header["X-Ssl-Client-Cert"] = []string{cert}
		req.Header["X-Forwarded-Tls-Client-Cert"] = []string{cert}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
		case 400:
			if rec.Header().Get("Content-Type") != "application/problem+json" || a.got != nil {
				t.Fatalf("400 with content type %q, decided %v", rec.Header().Get("Content-Type"), a.got)
			}
			return
		default:
			t.Fatalf("unexpected status %d", rec.Code)
		}
		if !trusted {
			t.Fatal("an untrusted peer's forwarded request was decided")
		}
		g := a.got
		if g.Method != strings.TrimSpace(method) {
			t.Fatalf("decided method %q, the gateway said %q", g.Method, method)
		}
		if !g.RemoteIP.IsValid() {
			return
		}
		ip := g.RemoteIP.String()
		source := xff
		if style == StyleNginx {
			source = realIP
		}
		found := false
		for _, hop := range strings.Split(source, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap().String() == ip {
				found = true
			}
		}
		if !found {
			t.Fatalf("client address %s is not in the gateway's %q", ip, source)
		}
	})
}
