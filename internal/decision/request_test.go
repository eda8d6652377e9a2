package decision

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/token"
)

func TestNewRequestRefuses(t *testing.T) {
	ok := RawRequest{Method: "GET", URL: "https://a.example/x"}
	tests := []struct {
		name string
		mut  func(*RawRequest)
	}{
		{"fail/no method", func(r *RawRequest) { r.Method = "" }},
		{"fail/method with a space", func(r *RawRequest) { r.Method = "GE T" }},
		{"fail/no url", func(r *RawRequest) { r.URL = "" }},
		{"fail/relative url", func(r *RawRequest) { r.URL = "/x" }},
		{"fail/header name not a token", func(r *RawRequest) { r.Headers = map[string][]string{"a b": {"x"}} }},
		{"fail/too many header values", func(r *RawRequest) { r.Headers = map[string][]string{"x": make([]string, MaxHeaderValues+1)} }},
		{"fail/headers too large", func(r *RawRequest) { r.Headers = map[string][]string{"x": {strings.Repeat("a", MaxHeaderBytes)}} }},
		{"fail/bad remote ip", func(r *RawRequest) { r.RemoteIP = "1.2.3" }},
		{"fail/not a certificate", func(r *RawRequest) {
			r.ClientCertPEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}},
		{"fail/certificate too large", func(r *RawRequest) { r.ClientCertPEM = strings.Repeat("a", MaxClientCertPEM+1) }},
		{"fail/form too large", func(r *RawRequest) { r.Form = url.Values{"a": {strings.Repeat("b", MaxFormBytes)}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := ok
			tt.mut(&raw)
			if _, err := NewRequest(raw); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("NewRequest: err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	req, err := NewRequest(RawRequest{Method: "GET", URL: "HTTPS://A.example:443/./x", Headers: map[string][]string{"User-Agent": {"u"}}, RemoteIP: "::ffff:10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if req.URL.String() != "https://a.example/x" || req.Headers["user-agent"][0] != "u" || req.RemoteIP.String() != "10.0.0.1" {
		t.Errorf("normalised request = %+v", req)
	}
}

func TestExtractCredential(t *testing.T) {
	tests := []struct {
		name, scheme, raw, code string
		headers                 []string
	}{
		{"ok/bearer", "bearer", "abc", "", []string{"Bearer abc"}},
		{"ok/dpop, case-insensitive", "dpop", "abc", "", []string{"dPoP abc"}},
		{"ok/no header", "", "", "", nil},
		{"ok/basic is no access token", "", "", "", []string{"Basic dXNlcjpwdw=="}},
		{"fail/two headers", "", "", CodeRequestInvalid, []string{"Bearer a", "Bearer b"}},
		{"fail/empty bearer", "bearer", "", token.CodeTokenMalformed, []string{"Bearer "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := extractCredential(map[string][]string{"authorization": tt.headers})
			code := ""
			if c.err != nil {
				code = c.err.Code
			}
			if c.scheme != tt.scheme || c.raw != tt.raw || code != tt.code {
				t.Errorf("credential = %+v (code %q)", c, code)
			}
		})
	}
}

// A path the one normalisation refuses is no error of the caller: the
// request is built, and the engine denies it with request_path_invalid
// (400) before it looks at the token or asks the policy.
func TestRefusedPathIsADeny(t *testing.T) {
	for _, raw := range []string{
		`https://api.example.com/v1/accounts/42\..\..\admin\users`,
		"https://api.example.com/v1/accounts/42%5C..%5Cadmin",
		"https://api.example.com/v1/accounts/a%2Fb",
		"https://api.example.com/v1/accounts/%252F",
		"https://api.example.com/v1/accounts/%C0%AF",
		"https://api.example.com/v1/accounts/%00",
	} {
		t.Run(raw, func(t *testing.T) {
			req, err := NewRequest(RawRequest{Method: "GET", URL: raw})
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			if req.PathRefused == "" || req.URL == nil || req.URL.Path != "" {
				t.Fatalf("PathRefused %q, URL %v; want a reason and an empty URL", req.PathRefused, req.URL)
			}
			// No verifier and no policy: neither may be reached.
			e := NewEngine(t.Context(), nil, nil, Options{})
			d, err := e.Decide(t.Context(), req)
			if err != nil || d.Allow || d.Status != 400 || len(d.Reasons) != 1 || d.Reasons[0].Code != CodeRequestPathInvalid {
				t.Fatalf("Decide = %+v, %v; want a 400 request_path_invalid deny", d, err)
			}
		})
	}
}

func TestNewMessageRefuses(t *testing.T) {
	ok := RawMessage{Broker: "nats", Operation: "publish", Destination: "orders.created", Token: "abc"}
	tests := []struct {
		name string
		mut  func(*RawMessage)
	}{
		{"fail/no broker", func(m *RawMessage) { m.Broker = "" }},
		{"fail/broker in capitals", func(m *RawMessage) { m.Broker = "NATS" }},
		{"fail/broker with a dot", func(m *RawMessage) { m.Broker = "nats.io" }},
		{"fail/broker too long", func(m *RawMessage) { m.Broker = strings.Repeat("n", MaxBrokerBytes+1) }},
		{"fail/no operation", func(m *RawMessage) { m.Operation = "" }},
		{"fail/unknown operation", func(m *RawMessage) { m.Operation = "Publish" }},
		{"fail/publish without destination", func(m *RawMessage) { m.Destination = "" }},
		{"fail/connect with destination", func(m *RawMessage) { m.Operation = "connect" }},
		{"fail/destination too long", func(m *RawMessage) { m.Destination = strings.Repeat("a", MaxDestinationBytes+1) }},
		{"fail/destination with NUL", func(m *RawMessage) { m.Destination = "a\x00b" }},
		{"fail/destination with a newline", func(m *RawMessage) { m.Destination = "a\nb" }},
		{"fail/destination with a C1 control", func(m *RawMessage) { m.Destination = "a\u0085b" }},
		{"fail/destination invalid UTF-8", func(m *RawMessage) { m.Destination = "a\xffb" }},
		{"fail/vhost too long", func(m *RawMessage) { m.VHost = strings.Repeat("v", MaxVHostBytes+1) }},
		{"fail/vhost with DEL", func(m *RawMessage) { m.VHost = "/\x7f" }},
		{"fail/token and header", func(m *RawMessage) { m.Headers = map[string][]string{"Authorization": {"Bearer b"}} }},
		{"fail/token with white space", func(m *RawMessage) { m.Token = "a b" }},
		{"fail/verified and token", func(m *RawMessage) { m.Verified = &token.Token{Hash: "h"} }},
		{"fail/header name not a token", func(m *RawMessage) { m.Token = ""; m.Headers = map[string][]string{"a b": {"x"}} }},
		{"fail/headers too large", func(m *RawMessage) {
			m.Token = ""
			m.Headers = map[string][]string{"x": {strings.Repeat("a", MaxHeaderBytes)}}
		}},
		{"fail/remote ip a host name", func(m *RawMessage) { m.RemoteIP = "broker.example" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := ok
			tt.mut(&raw)
			if _, err := NewMessage(raw); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("NewMessage: err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	req, err := NewMessage(RawMessage{Broker: "rabbitmq", Operation: "consume", Destination: "orders", VHost: "/",
		Headers: map[string][]string{"Authorization": {"Bearer abc"}, "DPoP": {"proof"}, "User-Agent": {"u"}}, RemoteIP: "[::ffff:10.0.0.1]:5672"})
	if err != nil {
		t.Fatal(err)
	}
	if req.Message == nil || req.Message.Destination != "orders" || req.RemoteIP.String() != "10.0.0.1" {
		t.Errorf("message = %+v", req)
	}
	if len(req.Headers) != 1 || req.Headers["authorization"][0] != "Bearer abc" {
		t.Errorf("headers = %v, want the authorization header alone", req.Headers)
	}
}

// FuzzNewMessage: NewMessage never panics, and what it accepts is within
// its bounds.
func FuzzNewMessage(f *testing.F) {
	f.Add("nats", "publish", "orders.>", "/", "abc", "10.0.0.1")
	f.Add("rabbitmq", "connect", "", "", "", "")
	f.Add("kafka", "consume", "a\x00", "\xff", "a b", "::1%eth0")
	f.Fuzz(func(t *testing.T, broker, op, dest, vhost, tok, ip string) {
		req, err := NewMessage(RawMessage{Broker: broker, Operation: op, Destination: dest, VHost: vhost, Token: tok, RemoteIP: ip})
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		m := req.Message
		if len(m.Destination) > MaxDestinationBytes || len(m.Broker) > MaxBrokerBytes || len(m.VHost) > MaxVHostBytes {
			t.Fatalf("accepted past its bounds: %+v", m)
		}
		if (m.Operation == OpConnect) != (m.Destination == "") {
			t.Fatalf("connect and destination disagree: %+v", m)
		}
	})
}
