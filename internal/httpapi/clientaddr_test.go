package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/tokenguard/pdp/internal/extauthz"
)

// Every transport reads the client address with one parser
// (decision.ParseClientAddr): the same spelling means the same address,
// or the same 400, whether it comes in the decide body, a forward-auth
// header or ext_authz's source address.
func TestClientAddressSpellingsOnEveryTransport(t *testing.T) {
	spellings := []struct {
		name, addr, want string // want "": refused with 400
	}{
		{"ok/IPv4", "203.0.113.7", "203.0.113.7"},
		{"ok/IPv4 with a port", "203.0.113.7:5", "203.0.113.7"},
		{"ok/IPv6", "2001:db8::7", "2001:db8::7"},
		{"ok/IPv6 with a port", "[2001:db8::7]:5", "2001:db8::7"},
		{"ok/IPv6 in brackets", "[2001:db8::7]", "2001:db8::7"},
		{"ok/loopback with a port", "[::1]:5", "::1"},
		{"ok/IPv4-mapped IPv6", "::ffff:203.0.113.7", "203.0.113.7"},
		{"ok/IPv4-mapped IPv6 with a port", "[::ffff:203.0.113.7]:443", "203.0.113.7"},
		{"fail/a zone", "fe80::1%eth0", ""},
		{"fail/a zone with a port", "[fe80::1%eth0]:5", ""},
		{"fail/port 0", "203.0.113.7:0", ""},
		{"fail/port past 65535", "203.0.113.7:65536", ""},
		{"fail/a port that is no number", "203.0.113.7:http", ""},
		{"fail/an empty port", "203.0.113.7:", ""},
		{"fail/a host name", "client.example", ""},
		{"fail/a host name with a port", "client.example:80", ""},
		{"fail/IPv4 in brackets", "[203.0.113.7]", ""},
		{"fail/junk after the bracket", "[::1]x", ""},
		{"fail/too long", "2001:db8::" + strings.Repeat("0", 80), ""},
	}
	type transport struct {
		name string
		// send returns the status answered and the address decided on.
		send func(t *testing.T, addr string) (int, string)
	}
	gotAddr := func(a *allowing) string {
		if a.got == nil || !a.got.RemoteIP.IsValid() {
			return ""
		}
		return a.got.RemoteIP.String()
	}
	forwardAuth := func(style Style, header string) func(t *testing.T, addr string) (int, string) {
		return func(t *testing.T, addr string) (int, string) {
			a := &allowing{}
			h := New(Options{Decider: a, ForwardAuth: &ForwardAuth{Style: style, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
			line := http.Header{}
			for k, v := range gatewayHeaders[style] {
				if k != "X-Real-Ip" && k != "X-Forwarded-For" {
					line[k] = v
				}
			}
			line.Set(header, addr)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, forwardAuthRequest("10.1.2.3:1", line))
			return rec.Code, gotAddr(a)
		}
	}
	transports := []transport{
		{"decide body remote_ip", func(t *testing.T, addr string) (int, string) {
			a := &allowing{}
			b, _ := json.Marshal(addr)
			rec := post(t, New(Options{Decider: a}), "application/json",
				`{"request":{"method":"GET","url":"https://api.example.com/x","remote_ip":`+string(b)+`}}`)
			return rec.Code, gotAddr(a)
		}},
		{"forward-auth nginx X-Real-IP", forwardAuth(StyleNginx, "X-Real-Ip")},
		{"forward-auth traefik X-Forwarded-For", forwardAuth(StyleTraefik, "X-Forwarded-For")},
		{"ext_authz source address", func(t *testing.T, addr string) (int, string) {
			a := &allowing{}
			srv := extauthz.NewServer(a, extauthz.Options{})
			resp, err := srv.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 54321}}}}},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Scheme: "https", Host: "api.example.com", Path: "/x",
					Headers: map[string]string{":authority": "api.example.com", ":method": "GET", ":path": "/x", ":scheme": "https", "authorization": "Bearer abc"},
				}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if d := resp.GetDeniedResponse(); d != nil {
				return int(d.GetStatus().GetCode()), gotAddr(a)
			}
			return http.StatusOK, gotAddr(a)
		}},
	}
	for _, tr := range transports {
		for _, sp := range spellings {
			t.Run(tr.name+"/"+sp.name, func(t *testing.T) {
				status, got := tr.send(t, sp.addr)
				switch {
				case sp.want == "" && status != http.StatusBadRequest:
					t.Errorf("%q: %d, decided on %q; want 400", sp.addr, status, got)
				case sp.want != "" && (status != http.StatusOK || got != sp.want):
					t.Errorf("%q: %d, decided on %q; want 200 on %s", sp.addr, status, got, sp.want)
				}
			})
		}
	}
}
