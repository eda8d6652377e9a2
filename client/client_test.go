package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/client"
)

// example reads a real answer of the PDP, as the API docs show it (written
// by the server's own end-to-end tests).
func example(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// answer is what a stand-in PDP answers.
type answer struct {
	status  int
	ctype   string
	headers map[string]string
	body    string
	hang    bool // until the caller gives up
}

// standIn is an HTTP server answering POST /v1/decide with a, recording
// the last body and gateway credential it got.
func standIn(t *testing.T, a answer) (*httptest.Server, *atomic.Pointer[string]) {
	t.Helper()
	var got atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := string(b) + "|" + r.Header.Get(client.GatewayHeader)
		got.Store(&s)
		if r.URL.Path != "/v1/decide" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if a.hang {
			<-r.Context().Done()
			return
		}
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		if a.ctype != "" {
			w.Header().Set("Content-Type", a.ctype)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func newClient(t *testing.T, server string, mutate func(*client.Options)) *client.Client {
	t.Helper()
	opts := client.Options{Server: server, Credential: "gw-secret", Timeout: 5 * time.Second}
	if mutate != nil {
		mutate(&opts)
	}
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var getAccounts = &client.Request{Method: "GET", URL: "https://api.example.com/v1/accounts/42",
	Headers: map[string][]string{"Authorization": {"Bearer tok"}}}

func TestDecideReadsDecisionsAndFailsClosed(t *testing.T) {
	const jsonType = "application/json"
	redirectTarget, hit := standIn(t, answer{status: 200, ctype: jsonType, body: example(t, "decide-allow.json")})
	closed := func() string { // a port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}()
	tests := []struct {
		name     string
		answer   answer
		server   string // instead of a stand-in
		mutate   func(*client.Options)
		allow    bool
		status   int      // of the returned decision
		codes    []string // of the returned decision
		upstream string   // X-Tokenguard-Subject of the decision
		err      error    // errors.Is
		retry    time.Duration
	}{
		{name: "ok/allow as the PDP answers it", answer: answer{status: 200, ctype: jsonType, body: example(t, "decide-allow.json")},
			allow: true, status: 200, codes: []string{}, upstream: "alice"},
		{name: "ok/deny with its reason", answer: answer{status: 200, ctype: "application/json; charset=utf-8", body: example(t, "decide-deny-no-token.json")},
			status: 401, codes: []string{"token_missing"}},
		{name: "fail/overloaded decision is an error with its Retry-After", answer: answer{status: 200, ctype: jsonType, body: example(t, "overload-decide.json")},
			status: 503, codes: []string{"overloaded"}, err: client.ErrOverloaded, retry: time.Second},
		{name: "fail/HTTP 503 is overloaded", answer: answer{status: 503, headers: map[string]string{"Retry-After": "2"}, body: "busy"},
			status: 503, codes: []string{}, err: client.ErrOverloaded, retry: 2 * time.Second},
		{name: "fail/policy error is an error", answer: answer{status: 500, ctype: "application/problem+json", body: `{"type":"https://tokenguard.dev/problems/policy-error","title":"Policy Error","status":500,"allow":false,"reasons":[{"code":"policy_error","message":"x"}]}`},
			status: 500, codes: []string{}, err: client.ErrStatus},
		{name: "fail/refused gateway credential is an error", answer: answer{status: 401, ctype: "application/problem+json", body: `{"type":"https://tokenguard.dev/problems/unauthorized","title":"Unauthorized","status":401}`},
			status: 503, codes: []string{}, err: client.ErrStatus},
		{name: "fail/HTML is not a decision", answer: answer{status: 200, ctype: "text/html", body: `<html>{"allow":true,"status":200}</html>`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/garbage labelled JSON is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":tru`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/JSON without allow is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"status":200,"upstream_headers":{"x-tokenguard-subject":"alice"}}`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/allow as a string is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":"true","status":200}`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/allow given twice is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":false,"status":200,"allow":true}`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/allow with a deny status is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":true,"status":401}`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/two JSON values are not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":false,"status":403} {"allow":true,"status":200}`},
			status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/oversized answer is not a decision", answer: answer{status: 200, ctype: jsonType, body: `{"allow":true,"status":200,"pad":"` + strings.Repeat("x", 4096) + `"}`},
			mutate: func(o *client.Options) { o.MaxResponseBytes = 1024 }, status: 503, codes: []string{}, err: client.ErrNotDecision},
		{name: "fail/redirect is not followed", answer: answer{status: 307, headers: map[string]string{"Location": redirectTarget.URL + "/v1/decide"}},
			status: 503, codes: []string{}, err: client.ErrStatus},
		{name: "fail/timeout", answer: answer{hang: true}, mutate: func(o *client.Options) { o.Timeout = 50 * time.Millisecond },
			status: 503, codes: []string{}, err: context.DeadlineExceeded},
		{name: "fail/server down", server: closed, status: 503, codes: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := tt.server
			var got *atomic.Pointer[string]
			if server == "" {
				var srv *httptest.Server
				srv, got = standIn(t, tt.answer)
				server = srv.URL
			}
			d, err := newClient(t, server, tt.mutate).Decide(t.Context(), getAccounts)
			if d == nil {
				t.Fatalf("no decision (err %v)", err)
			}
			if d.Allow != tt.allow || d.Status != tt.status || strings.Join(d.Codes(), ",") != strings.Join(tt.codes, ",") {
				t.Errorf("decision allow=%v status=%d codes=%v, want %v %d %v (err %v)", d.Allow, d.Status, d.Codes(), tt.allow, tt.status, tt.codes, err)
			}
			if d.UpstreamHeaders["x-tokenguard-subject"] != tt.upstream {
				t.Errorf("upstream headers %v", d.UpstreamHeaders)
			}
			switch {
			case strings.HasPrefix(tt.name, "ok/"):
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			case err == nil:
				t.Fatal("no error")
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.retry != 0 {
				var over *client.OverloadedError
				if !errors.As(err, &over) || over.RetryAfter != tt.retry {
					t.Errorf("err = %#v, want RetryAfter %s", err, tt.retry)
				}
			}
			if got != nil && got.Load() != nil && !strings.HasSuffix(*got.Load(), "|gw-secret") {
				t.Errorf("the gateway credential was not sent: %q", *got.Load())
			}
		})
	}
	if hit.Load() != nil {
		t.Error("a redirect was followed")
	}
}

func TestDecideSendsTheContractsBodies(t *testing.T) {
	tests := []struct {
		name string
		call func(*client.Client) (*client.Decision, error)
		want string
	}{
		{"request with context", func(c *client.Client) (*client.Decision, error) {
			return c.Decide(t.Context(), &client.Request{Method: "POST", URL: "https://api.example.com/v1/x",
				Headers: map[string][]string{"Authorization": {"Bearer t"}, "DPoP": {"p"}}, RemoteIP: "192.0.2.7",
				Context: map[string]any{"tenant": "acme"}})
		}, `{"request":{"method":"POST","url":"https://api.example.com/v1/x","headers":{"Authorization":["Bearer t"],"DPoP":["p"]},"remote_ip":"192.0.2.7"},"context":{"tenant":"acme"}}`},
		{"publish message", func(c *client.Client) (*client.Decision, error) {
			return c.DecideMessage(t.Context(), &client.Message{Broker: "nats", Operation: "publish", Destination: "orders.created", Token: "t"})
		}, `{"message":{"broker":"nats","operation":"publish","destination":"orders.created","token":"t"}}`},
		{"connect message without destination", func(c *client.Client) (*client.Decision, error) {
			return c.DecideMessage(t.Context(), &client.Message{Broker: "rabbitmq", Operation: "connect", VHost: "/",
				Headers: map[string][]string{"authorization": {"Bearer t"}}, RemoteIP: "192.0.2.7"})
		}, `{"message":{"broker":"rabbitmq","operation":"connect","vhost":"/","headers":{"authorization":["Bearer t"]},"remote_ip":"192.0.2.7"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := standIn(t, answer{status: 200, ctype: "application/json", body: example(t, "decide-deny-no-token.json")})
			if _, err := tt.call(newClient(t, srv.URL, nil)); err != nil {
				t.Fatal(err)
			}
			if body := strings.TrimSuffix(*got.Load(), "|gw-secret"); body != tt.want {
				t.Errorf("body\n%s\nwant\n%s", body, tt.want)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, server := range []string{"", "127.0.0.1:8181", "ftp://pdp", "http://user:pw@pdp", "http://pdp?x=1", "http:///v1"} {
		if _, err := client.New(client.Options{Server: server}); err == nil {
			t.Errorf("server %q accepted", server)
		}
	}
	if _, err := client.New(client.Options{Server: "http://pdp", Credential: "a\r\nX-Evil: 1"}); err == nil {
		t.Error("a credential over two lines accepted")
	}
}

func FuzzParseDecision(f *testing.F) {
	for _, name := range []string{"decide-allow.json", "decide-deny-no-token.json", "overload-decide.json", "decide-problem-malformed.json"} {
		f.Add([]byte(example(f, name)))
	}
	f.Add([]byte(`{"allow":true,"status":200,"allow":false}`))
	f.Add([]byte(`{"allow":true,"status":200,"headers":{"a b":"c"}}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := client.ParseDecision(raw)
		if err != nil {
			if d != nil || !errors.Is(err, client.ErrNotDecision) {
				t.Fatalf("ParseDecision error %v with decision %v", err, d)
			}
			return
		}
		if d.Allow != (d.Status >= 200 && d.Status < 300) || d.Status < 200 || d.Status > 599 {
			t.Fatalf("an ambiguous decision: allow %v status %d", d.Allow, d.Status)
		}
		// What was read reads the same once written.
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := client.ParseDecision(b)
		if err != nil || again.Allow != d.Allow || again.Status != d.Status || len(again.UpstreamHeaders) != len(d.UpstreamHeaders) {
			t.Fatalf("round trip: %v %v", again, err)
		}
	})
}

func TestClientReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, example(t, "decide-allow.json"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, nil)
	for range 20 {
		if d, err := c.Decide(t.Context(), getAccounts); err != nil || !d.Allow {
			t.Fatalf("%v %v", d, err)
		}
	}
	// Denies and errors read the whole answer too, so the connection is kept.
	for range 5 {
		_, _ = c.Decide(t.Context(), &client.Request{})
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 25 sequential decisions, want 1", n)
	}
}
