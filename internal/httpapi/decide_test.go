package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

// recorder is a Decider that records the normalised request it was asked
// about; these tests are about HTTP translation, the decisions themselves
// are tested end to end with the real policy.
type recorder struct {
	got *decision.Request
	err error
}

func (r *recorder) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	r.got = req
	d := &decision.Decision{Allow: false, Status: 401, Reasons: []policy.Reason{{Code: "token_missing", Message: "no access token"}}}
	if r.err != nil {
		d.Status = 500
		return d, r.err
	}
	return d, nil
}

func post(t *testing.T, h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/decide", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestDecideRejectsBadBodies(t *testing.T) {
	big := `{"request":{"method":"GET","url":"https://a.example/","headers":{"x":"` + strings.Repeat("a", MaxDecideBody) + `"}}}`
	tests := []struct {
		name, contentType, body string
		status                  int
		detail                  string
	}{
		{"fail/wrong content type", "text/plain", `{}`, 415, "application/json"},
		{"fail/no content type", "", `{}`, 415, "application/json"},
		{"fail/not JSON", "application/json", `nope`, 400, "syntax error"},
		{"fail/empty body", "application/json", ``, 400, "empty body"},
		{"fail/two JSON values", "application/json", `{"request":{"method":"GET","url":"https://a.example/"}} {}`, 400, "more than one"},
		{"fail/missing request", "application/json", `{}`, 400, "request is required"},
		{"fail/missing method", "application/json", `{"request":{"url":"https://a.example/"}}`, 400, "request.method is required"},
		{"fail/missing url", "application/json", `{"request":{"method":"GET"}}`, 400, "request.url is required"},
		{"fail/relative url", "application/json", `{"request":{"method":"GET","url":"/x"}}`, 400, "request.url"},
		{"fail/method not a token", "application/json", `{"request":{"method":"G T","url":"https://a.example/"}}`, 400, "request.method"},
		{"fail/unknown field", "application/json", `{"request":{"method":"GET","url":"https://a.example/","remoteIp":"1.2.3.4"}}`, 400, "unknown field"},
		{"fail/header value a number", "application/json", `{"request":{"method":"GET","url":"https://a.example/","headers":{"x":1}}}`, 400, "decision request"},
		{"fail/bad remote ip", "application/json", `{"request":{"method":"GET","url":"https://a.example/","remote_ip":"999.1.1.1"}}`, 400, "remote_ip"},
		{"fail/bad client cert", "application/json", `{"request":{"method":"GET","url":"https://a.example/","tls_client_cert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}`, 400, "tls_client_cert"},
		{"fail/context not an object", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"context":[1]}`, 400, "context must be an object"},
		{"fail/context duplicate member", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"context":{"a":1,"a":2}}`, 400, "duplicate"},
		{"fail/header named twice", "application/json", `{"request":{"method":"GET","url":"https://a.example/","headers":{"authorization":"Bearer a","authorization":"Bearer b"}}}`, 400, "duplicate"},
		{"fail/request named twice", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"request":{"method":"POST","url":"https://a.example/"}}`, 400, "duplicate"},
		{"fail/request null", "application/json", `{"request":null}`, 400, "request is required"},
		{"fail/request not an object", "application/json", `{"request":"GET /"}`, 400, "request must be an object"},
		{"fail/body not an object", "application/json", `[{"request":{}}]`, 400, "JSON object"},
		{"fail/unknown top-level field", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"input":{}}`, 400, "unknown field"},
		{"fail/method a number", "application/json", `{"request":{"method":7,"url":"https://a.example/"}}`, 400, "request.method has the wrong type"},
		{"fail/header values not strings", "application/json", `{"request":{"method":"GET","url":"https://a.example/","headers":{"x":["a",1]}}}`, 400, "string or an array of strings"},
		{"fail/headers not an object", "application/json", `{"request":{"method":"GET","url":"https://a.example/","headers":["x"]}}`, 400, "request.headers must be an object"},
		{"fail/form body a number", "application/json", `{"request":{"method":"POST","url":"https://a.example/","body":7}}`, 400, "request.body"},
		{"fail/form body malformed", "application/json", `{"request":{"method":"POST","url":"https://a.example/","body":"a=%zz"}}`, 400, "request.body"},
		{"fail/context nested too deep", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"context":` + strings.Repeat(`{"a":`, 17) + `1` + strings.Repeat(`}`, 17) + `}`, 400, "too deep"},
		{"fail/invalid UTF-8", "application/json", "{\"request\":{\"method\":\"GET\",\"url\":\"https://a.example/\xff\"}}", 400, "syntax error"},
		{"fail/body over 1 MiB", "application/json", big, 413, "exceeds"},
		{"fail/message and request both", "application/json", `{"request":{"method":"GET","url":"https://a.example/"},"message":{"broker":"nats","operation":"connect"}}`, 400, "not both"},
		{"fail/message not an object", "application/json", `{"message":"publish nats a"}`, 400, "message must be an object"},
		{"fail/message unknown field", "application/json", `{"message":{"broker":"nats","operation":"connect","subject":"a"}}`, 400, `unknown field "message.subject"`},
		{"fail/message without broker", "application/json", `{"message":{"operation":"connect"}}`, 400, "message.broker is required"},
		{"fail/message broker in capitals", "application/json", `{"message":{"broker":"NATS","operation":"connect"}}`, 400, "message.broker"},
		{"fail/message unknown operation", "application/json", `{"message":{"broker":"nats","operation":"delete","destination":"a"}}`, 400, "message.operation"},
		{"fail/message publish without destination", "application/json", `{"message":{"broker":"nats","operation":"publish"}}`, 400, "message.destination is required"},
		{"fail/message connect with destination", "application/json", `{"message":{"broker":"nats","operation":"connect","destination":"a"}}`, 400, "absent for connect"},
		{"fail/message destination a number", "application/json", `{"message":{"broker":"nats","operation":"publish","destination":7}}`, 400, "message.destination has the wrong type"},
		{"fail/message destination with a control character", "application/json", `{"message":{"broker":"nats","operation":"publish","destination":"a\u0000b"}}`, 400, "control characters"},
		{"fail/message destination too long", "application/json", `{"message":{"broker":"nats","operation":"publish","destination":"` + strings.Repeat("a", 1025) + `"}}`, 400, "exceeds 1024 bytes"},
		{"fail/message token and authorization header", "application/json", `{"message":{"broker":"nats","operation":"connect","token":"a","headers":{"authorization":"Bearer b"}}}`, 400, "not both"},
		{"fail/message token with a space", "application/json", `{"message":{"broker":"nats","operation":"connect","token":"a b"}}`, 400, "white space"},
		{"fail/message headers not an object", "application/json", `{"message":{"broker":"nats","operation":"connect","headers":[]}}`, 400, "message.headers must be an object"},
		{"fail/message bad remote ip", "application/json", `{"message":{"broker":"nats","operation":"connect","remote_ip":"host.example"}}`, 400, "message.remote_ip"},
		{"fail/message named twice", "application/json", `{"message":{"broker":"nats","operation":"connect"},"message":{"broker":"nats","operation":"connect"}}`, 400, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, New(Options{Decider: &recorder{}}), tt.contentType, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			if rec.Header().Get("X-Decision-Id") == "" {
				t.Error("no X-Decision-Id")
			}
			var p map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem is not JSON: %v", err)
			}
			if p["status"] != float64(tt.status) || p["type"] == "" || p["title"] == "" {
				t.Errorf("problem lacks RFC 9457 members: %v", p)
			}
			if d, _ := p["detail"].(string); !strings.Contains(d, tt.detail) {
				t.Errorf("detail = %q, want it to mention %q", d, tt.detail)
			}
		})
	}
}

func TestDecideNormalisesTheRequest(t *testing.T) {
	r := &recorder{}
	body := `{"request":{"method":"GET","url":"HTTPS://API.Example.com:443/v1/./accounts/42?x=1",
		"headers":{"Authorization":"Bearer abc","X-Multi":["a","b"],"x-multi":"c"},"remote_ip":"::ffff:203.0.113.7"},
		"context":{"tenant":"t1"}}`
	rec := post(t, New(Options{Decider: r}), "application/json; charset=utf-8", body)
	if rec.Code != 200 {
		t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
	}
	got := r.got
	if got.URL.String() != "https://api.example.com/v1/accounts/42?x=1" {
		t.Errorf("URL = %s", got.URL)
	}
	if v := got.Headers["authorization"]; len(v) != 1 || v[0] != "Bearer abc" {
		t.Errorf("authorization = %v", v)
	}
	if v := got.Headers["x-multi"]; len(v) != 3 {
		t.Errorf("x-multi = %v, want the values of both spellings", v)
	}
	if got.RemoteIP.String() != "203.0.113.7" {
		t.Errorf("remote ip = %v, want the unmapped IPv4", got.RemoteIP)
	}
	if got.Context == nil || got.Context.Len() != 1 {
		t.Errorf("context = %v", got.Context)
	}
	var d map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d["decision_id"] != rec.Header().Get("X-Decision-Id") || d["decision_id"] == "" {
		t.Errorf("decision_id %v does not match X-Decision-Id %q", d["decision_id"], rec.Header().Get("X-Decision-Id"))
	}
}

func TestDecideReadsAMessage(t *testing.T) {
	tests := []struct {
		name, body, auth string
		op, dest, vhost  string
		ip               string
	}{
		{"ok/token member", `{"message":{"broker":"nats","operation":"publish","destination":"orders.created","token":"abc","remote_ip":"::ffff:198.51.100.7"},"context":{"t":1}}`,
			"Bearer abc", "publish", "orders.created", "", "198.51.100.7"},
		{"ok/authorization header", `{"message":{"broker":"rabbitmq","operation":"consume","destination":"orders","vhost":"/","headers":{"Authorization":["Bearer abc"],"dpop":"proof"}}}`,
			"Bearer abc", "consume", "orders", "/", "invalid IP"},
		{"ok/connect without a token", `{"message":{"broker":"kafka","operation":"connect"}}`,
			"", "connect", "", "", "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			rec := post(t, New(Options{Decider: r}), "application/json", tt.body)
			if rec.Code != 200 {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
			}
			m := r.got.Message
			if m == nil {
				t.Fatal("no message")
			}
			if m.Operation != tt.op || m.Destination != tt.dest || m.VHost != tt.vhost {
				t.Errorf("message = %+v", m)
			}
			if got := strings.Join(r.got.Headers["authorization"], ","); got != tt.auth {
				t.Errorf("authorization = %q, want %q", got, tt.auth)
			}
			if _, ok := r.got.Headers["dpop"]; ok {
				t.Error("a message's other headers reached the engine; only authorization is read")
			}
			if r.got.RemoteIP.String() != tt.ip {
				t.Errorf("remote ip = %v, want %s", r.got.RemoteIP, tt.ip)
			}
			if r.got.Method != "" || r.got.URL == nil || r.got.URL.String() != "" {
				t.Errorf("a message carries no HTTP request: method %q, url %v", r.got.Method, r.got.URL)
			}
		})
	}
}

func TestDecideErrorIsA500DenyProblem(t *testing.T) {
	rec := post(t, New(Options{Decider: &recorder{err: errors.New("boom")}}), "application/json",
		`{"request":{"method":"GET","url":"https://a.example/"}}`)
	if rec.Code != 500 {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p["allow"] != false || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("500 problem must say allow=false and not leak the cause: %s", rec.Body)
	}
}

// FuzzDecideBody feeds arbitrary bodies to the decide handler: it must never
// panic and must answer a problem or a decision, never anything else.
func FuzzDecideBody(f *testing.F) {
	f.Add(`{"request":{"method":"GET","url":"https://a.example/x","headers":{"authorization":"Bearer a.b.c"}}}`)
	f.Add(`{"request":{"method":"GET","url":"https://a.example/x"},"context":{"a":[1,{"b":null}]}}`)
	f.Add(`{"request":{"method":"GET","url":"https://a.example/x","tls_client_cert":"-----BEGIN CERTIFICATE-----\n"}}`)
	f.Add(`[`)
	f.Add(`{"message":{"broker":"nats","operation":"publish","destination":"orders.>","token":"a.b.c","remote_ip":"10.0.0.1"}}`)
	f.Add(`{"message":{"broker":"rabbitmq","operation":"consume","destination":"q","vhost":"/","headers":{"authorization":"Bearer a"}}}`)
	for _, path := range []string{`/a\\..\\b`, "/a%5Cb", "/a%2Fb", "/%252F", "/%C0%AF", "/a%00", `/a\u0000`, "/a;x=1", "/..;/b", "/a//../b", "/%zz", "/a#/../b"} {
		f.Add(`{"request":{"method":"GET","url":"https://a.example` + path + `"}}`)
	}
	h := New(Options{Decider: &recorder{}})
	f.Fuzz(func(t *testing.T, body string) {
		rec := post(t, h, "application/json", body)
		switch rec.Code {
		case 200:
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("200 with content type %q", rec.Header().Get("Content-Type"))
			}
		case 400, 413:
			if rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d with content type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
		default:
			t.Fatalf("unexpected status %d", rec.Code)
		}
	})
}
