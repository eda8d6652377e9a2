package client_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/client"
)

// service is the wrapped handler: it echoes the X-Tokenguard-* headers it
// got and the subject of the decision in its context.
var service = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	seen := map[string]any{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, client.UpstreamPrefix) {
			seen[k] = v
		}
	}
	if d, ok := client.FromContext(r.Context()); ok && d.Token != nil {
		seen["decision"] = d.Token.Subject
	}
	_ = json.NewEncoder(w).Encode(seen)
})

func TestMiddlewareAnswersAsTheDecisionSays(t *testing.T) {
	tests := []struct {
		name        string
		answer      answer
		opts        client.MiddlewareOptions
		host        string
		target      string
		header      http.Header
		status      int
		respHeaders map[string]string
		body        string // a substring of the response
		decided     string // a substring of the body the PDP got
		canceled    bool   // the request's context has ended before it is served
	}{
		{name: "ok/allow passes the upstream headers and strips the client's own",
			answer:  answer{status: 200, ctype: "application/json", body: example(t, "decide-allow.json")},
			header:  http.Header{"X-Tokenguard-Subject": {"admin"}, "X-Tokenguard-Role": {"root"}, "Authorization": {"Bearer tok"}},
			status:  200,
			body:    `{"X-Tokenguard-Client-Id":["web-app"],"X-Tokenguard-Grant-Type":["authorization_code"],"X-Tokenguard-Scopes":["accounts:read"],"X-Tokenguard-Subject":["alice"],"decision":"alice"}`,
			decided: `"headers":{"Authorization":["Bearer tok"]}`},
		{name: "ok/the URL decided is the base URL's, whatever Host the client sent",
			answer: answer{status: 200, ctype: "application/json", body: example(t, "decide-allow.json")},
			opts:   client.MiddlewareOptions{BaseURL: "https://api.example.com/api"}, host: "evil.example", target: "/v1/accounts/42?x=%2F",
			status: 200, decided: `"url":"https://api.example.com/api/v1/accounts/42?x=%2F"`},
		{name: "ok/a host among Hosts is decided with that host",
			answer: answer{status: 200, ctype: "application/json", body: example(t, "decide-allow.json")},
			opts:   client.MiddlewareOptions{BaseURL: "https://api.example.com", Hosts: []string{"eu.api.example.com"}}, host: "EU.api.example.com",
			status: 200, decided: `"url":"https://eu.api.example.com/v1/accounts/42"`},
		{name: "ok/forwarded headers and cookies are not sent to the PDP",
			answer: answer{status: 200, ctype: "application/json", body: example(t, "decide-allow.json")},
			header: http.Header{"X-Forwarded-For": {"10.0.0.1"}, "Cookie": {"s=1"}, "User-Agent": {"job/1"}},
			status: 200, decided: `"headers":{"User-Agent":["job/1"]},"remote_ip":"192.0.2.1"`},
		{name: "fail/deny answers the decision's status, challenge and reasons",
			answer: answer{status: 200, ctype: "application/json", body: example(t, "decide-deny-no-token.json")},
			status: 401, respHeaders: map[string]string{"Www-Authenticate": `Bearer realm="tokenguard"`, "Content-Type": "application/problem+json"},
			body: `"reasons":["token_missing"]`},
		{name: "fail/overloaded is 503 with Retry-After",
			answer: answer{status: 200, ctype: "application/json", body: example(t, "overload-decide.json")},
			status: 503, respHeaders: map[string]string{"Retry-After": "1"}, body: `"reasons":["overloaded"]`},
		{name: "fail/no decision is 503",
			answer: answer{status: 200, ctype: "text/plain", body: "allow"},
			status: 503, body: `"type":"https://tokenguard.dev/problems/decision-unavailable"`},
		{name: "fail/a request the PDP cannot read is 400 with its detail",
			answer: answer{status: 400, ctype: "application/problem+json", body: `{"type":"https://tokenguard.dev/problems/invalid-request","title":"Bad Request","status":400,"detail":"request.headers has more than 256 headers"}`},
			opts:   client.MiddlewareOptions{ErrorStatus: 500},
			status: 400, body: `"detail":"the request cannot be decided: request.headers has more than 256 headers"`},
		{name: "fail/a request whose context ended is refused, not left as an empty 200",
			answer:   answer{status: 200, ctype: "application/json", body: example(t, "decide-allow.json")},
			canceled: true, status: 503, body: `"type":"https://tokenguard.dev/problems/decision-unavailable"`},
		{name: "fail/no decision is 500 when configured",
			answer: answer{status: 502, body: "bad gateway"},
			opts:   client.MiddlewareOptions{ErrorStatus: 500},
			status: 500, body: `"status":500`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := standIn(t, tt.answer)
			if tt.opts.BaseURL == "" {
				tt.opts.BaseURL = "https://api.example.com"
			}
			tt.opts.Logger = slog.New(slog.DiscardHandler)
			mw, err := client.Middleware(newClient(t, srv.URL, nil), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			target := tt.target
			if target == "" {
				target = "/v1/accounts/42"
			}
			r := httptest.NewRequest("GET", target, nil)
			if tt.canceled {
				ctx, cancel := context.WithCancel(r.Context())
				cancel()
				r = r.WithContext(ctx)
			}
			if tt.host != "" {
				r.Host = tt.host
			}
			for k, v := range tt.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			mw(service).ServeHTTP(w, r)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, body)
			}
			for k, v := range tt.respHeaders {
				if w.Header().Get(k) != v {
					t.Errorf("%s: %q, want %q", k, w.Header().Get(k), v)
				}
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body %s\nwant it to contain %s", body, tt.body)
			}
			sent := ""
			if p := got.Load(); p != nil {
				sent = *p
			}
			if !strings.Contains(sent, tt.decided) {
				t.Errorf("the PDP got %s\nwant it to contain %s", sent, tt.decided)
			}
		})
	}
}

func TestMiddlewareRefusesBadOptions(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", nil)
	for name, o := range map[string]client.MiddlewareOptions{
		"no base URL":       {},
		"relative base URL": {BaseURL: "/api"},
		"base URL query":    {BaseURL: "https://api.example.com/?a=1"},
		"error status 200":  {BaseURL: "https://api.example.com", ErrorStatus: 200},
		"host with a path":  {BaseURL: "https://api.example.com", Hosts: []string{"a.example/x"}},
	} {
		if _, err := client.Middleware(c, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
