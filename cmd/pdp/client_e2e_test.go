package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"

	"github.com/tokenguard/pdp/client"
	"github.com/tokenguard/pdp/internal/decision"
)

const gatewayCredential = "gateway-credential-for-tests"

// clientEnv is a real `pdp serve` process that admits only callers with
// the gateway credential, and tokens of its issuer.
type clientEnv struct {
	*processEnv
	gatewayFile string
	server      string
	valid       string // a token allowed to GET /v1/accounts/42, subject carol
	expired     string
	expiredAt   time.Time
}

// startClientEnv starts the process for one test.
func startClientEnv(t *testing.T) *clientEnv {
	t.Helper()
	e := &clientEnv{processEnv: newProcessEnv(t)}
	e.gatewayFile = filepath.Join(e.dir, "gateway")
	if err := os.WriteFile(e.gatewayFile, []byte(gatewayCredential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("decide:\n  auth:\n    credential_file: " + e.gatewayFile + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	e.server = "http://" + e.addr
	mint := func(claims map[string]any) string {
		base := map[string]any{"aud": testAudience, "sub": "carol", "client_id": "web", "scope": "accounts:read",
			"iat": time.Now().Add(-time.Minute).Unix()}
		for k, v := range claims {
			base[k] = v
		}
		tok, err := e.issuer.Mint(base)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	e.valid = mint(nil)
	e.expiredAt = time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	e.expired = mint(map[string]any{"iat": time.Now().Add(-time.Hour).Unix(), "exp": e.expiredAt.Unix(),
		"sub": "nightly-export", "client_id": "export-job", "jti": "jti-expired"})
	return e
}

func (e *clientEnv) client(t *testing.T, credential string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Server: e.server, Credential: credential, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClientAgainstARealServer(t *testing.T) {
	e := startClientEnv(t)
	tests := []struct {
		name       string
		token      string
		credential string
		server     string
		allow      bool
		status     int
		code       string
		challenge  string // in WWW-Authenticate
		err        error
	}{
		{name: "ok/allow with upstream headers", token: e.valid, credential: gatewayCredential, allow: true, status: 200},
		{name: "ok/deny with its reason and challenge", token: e.expired, credential: gatewayCredential, status: 401,
			code: "token_expired", challenge: `error="invalid_token"`},
		{name: "ok/deny without a token", credential: gatewayCredential, status: 401, code: "token_missing"},
		{name: "fail/without the gateway credential", token: e.valid, status: 503, err: client.ErrStatus},
		{name: "fail/server down", token: e.valid, credential: gatewayCredential, server: "http://" + freeAddr(t), status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.client(t, tt.credential)
			if tt.server != "" {
				var err error
				if c, err = client.New(client.Options{Server: tt.server, Credential: tt.credential}); err != nil {
					t.Fatal(err)
				}
			}
			req := &client.Request{Method: "GET", URL: "https://api.example.com/v1/accounts/42", Headers: map[string][]string{}}
			if tt.token != "" {
				req.Headers["Authorization"] = []string{"Bearer " + tt.token}
			}
			d, err := c.Decide(t.Context(), req)
			if d == nil || d.Allow != tt.allow || d.Status != tt.status {
				t.Fatalf("decision %+v, want allow=%v status %d (err %v)", d, tt.allow, tt.status, err)
			}
			switch {
			case strings.HasPrefix(tt.name, "ok/") && err != nil:
				t.Fatalf("err = %v", err)
			case strings.HasPrefix(tt.name, "fail/") && err == nil:
				t.Fatal("no error")
			case tt.err != nil && !errors.Is(err, tt.err):
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.code != "" && (len(d.Reasons) == 0 || d.Reasons[0].Code != tt.code) {
				t.Errorf("reasons %v, want %s first", d.Reasons, tt.code)
			}
			if !strings.Contains(d.Headers["www-authenticate"], tt.challenge) {
				t.Errorf("headers %v, want a challenge with %s", d.Headers, tt.challenge)
			}
			if tt.allow && (d.UpstreamHeaders["x-tokenguard-subject"] != "carol" || d.Token == nil || d.Token.Subject != "carol" || d.ID == "") {
				t.Errorf("allow without its upstream headers, token or id: %+v", d)
			}
		})
	}
}

// upstreamEcho is the service behind the middleware: it answers the
// X-Tokenguard-* headers it got.
var upstreamEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	got := map[string]string{}
	for k := range r.Header {
		if strings.HasPrefix(k, client.UpstreamPrefix) {
			got[k] = r.Header.Get(k)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(got)
})

func TestClientMiddlewareAgainstARealServer(t *testing.T) {
	e := startClientEnv(t)
	overloaded := newOverloadBed(t, decision.Options{MaxConcurrent: 8, MaxQueue: 8, MaxQueueWait: 5 * time.Millisecond, Timeout: 20 * time.Millisecond})
	tests := []struct {
		name    string
		server  string
		token   string
		spoof   bool
		extra   int // headers more
		status  int
		headers map[string]string // of the answer
		body    string            // a substring of the answer
		absent  string            // must not be in the answer
	}{
		{name: "ok/allow passes the upstream headers on, the client's own stripped", token: e.valid, spoof: true, status: 200,
			body: `"X-Tokenguard-Subject":"carol"`, absent: "X-Tokenguard-Role"},
		{name: "fail/deny answers the decision's status and challenge", token: e.expired, status: 401,
			headers: map[string]string{"Content-Type": "application/problem+json"},
			body:    `"reasons":["token_expired"]`},
		{name: "fail/no token", status: 401, headers: map[string]string{"Www-Authenticate": `Bearer realm="tokenguard"`}, body: `"type":"` + client.ProblemDenied + `"`},
		{name: "fail/a request the PDP cannot read is 400", token: e.valid, extra: 300, status: 400,
			body: `"type":"` + client.ProblemInvalidRequest + `"`},
		{name: "fail/overloaded is 503 with Retry-After", server: overloaded.http.URL, token: e.valid, status: 503,
			headers: map[string]string{"Retry-After": "1"}, body: `"reasons":["overloaded"]`},
		{name: "fail/server down is 503", server: "http://" + freeAddr(t), token: e.valid, status: 503,
			body: `"type":"` + client.ProblemUnavailable + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := e.server
			if tt.server != "" {
				server = tt.server
			}
			c, err := client.New(client.Options{Server: server, Credential: gatewayCredential, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			mw, err := client.Middleware(c, client.MiddlewareOptions{BaseURL: "https://api.example.com", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			svc := httptest.NewServer(mw(upstreamEcho))
			t.Cleanup(svc.Close)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", svc.URL+"/v1/accounts/42", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			for i := range tt.extra {
				req.Header.Set(fmt.Sprintf("X-Extra-%d", i), "x")
			}
			if tt.spoof {
				req.Header.Set("X-Tokenguard-Subject", "admin")
				req.Header.Set("X-Tokenguard-Role", "root")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(string(body), tt.body) || tt.absent != "" && strings.Contains(string(body), tt.absent) {
				t.Errorf("answer %s\nwant %s and not %q", body, tt.body, tt.absent)
			}
		})
	}
}

// runCheck runs `pdp check args...` in-process with stdin, and returns its
// stdout, stderr and exit code.
func runCheckCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"check"}, args...))
	err := root.Execute()
	var exit *opacmd.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Exit
	default:
		t.Fatalf("pdp check: %v", err)
	}
	return out.String(), errOut.String(), code
}

// The pdp check output docs/cli.md quotes.
var checkDenyGolden = docGolden("check-deny-expired.json", "TestCheckCommandExitsWithTheDecision")

func TestCheckCommandExitsWithTheDecision(t *testing.T) {
	e := startClientEnv(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid, expired := write("valid", e.valid+"\n"), write("expired", e.expired)
	wrongCred := write("wrong-credential", "not-it")
	overloaded := newOverloadBed(t, decision.Options{MaxConcurrent: 8, MaxQueue: 8, MaxQueueWait: 5 * time.Millisecond, Timeout: 20 * time.Millisecond})
	get := "GET https://api.example.com/v1/accounts/42"
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // a substring
		stderr string // a substring
		golden string // docs/examples/ file of stdout
	}{
		{name: "ok/allow exits 0 and prints the decision", args: []string{"--token-file", valid, "--request", get},
			code: checkAllowed, stdout: `"x-tokenguard-subject": "carol"`},
		{name: "ok/the token from standard input", stdin: e.valid + "\n", args: []string{"--token-file", "-", "--request", get},
			code: checkAllowed, stdout: `"allow": true`},
		{name: "fail/deny exits 1 with the reason", args: []string{"--token-file", expired, "--request", get},
			code: checkDenied, stdout: `"code": "token_expired"`, golden: checkDenyGolden},
		{name: "fail/unreadable token file exits 2", args: []string{"--token-file", filepath.Join(dir, "none"), "--request", get},
			code: checkError, stderr: "--token-file"},
		{name: "fail/empty token exits 2", stdin: "\n", args: []string{"--token-file", "-", "--request", get},
			code: checkError, stderr: "empty"},
		{name: "fail/two tokens exit 2", stdin: "a b\n", args: []string{"--token-file", "-", "--request", get},
			code: checkError, stderr: "not one token"},
		{name: "fail/server unreachable exits 2", args: []string{"--token-file", valid, "--request", get, "--server", "http://" + freeAddr(t)},
			code: checkError, stderr: "no decision"},
		{name: "fail/wrong gateway credential exits 2", args: []string{"--token-file", valid, "--request", get, "--gateway-credential-file", wrongCred},
			code: checkError, stderr: "HTTP 401"},
		{name: "fail/overloaded exits 2 and says when to retry", args: []string{"--token-file", valid, "--request", get, "--server", overloaded.http.URL},
			code: checkError, stdout: `"code": "overloaded"`, stderr: "retry after 1s"},
		{name: "fail/usage: both --request and --message", args: []string{"--token-file", valid, "--request", get, "--message", "connect nats"},
			code: checkError, stderr: "one of --request and --message"},
		{name: "fail/usage: a request without a URL", args: []string{"--token-file", valid, "--request", "GET /v1/x"},
			code: checkError, stderr: "absolute"},
		{name: "fail/usage: a connect with a destination", args: []string{"--token-file", valid, "--message", "connect nats orders.created"},
			code: checkError, stderr: "no destination"},
		{name: "fail/usage: a publish without one", args: []string{"--token-file", valid, "--message", "publish nats"},
			code: checkError, stderr: "needs a destination"},
		{name: "fail/usage: an unknown operation", args: []string{"--token-file", valid, "--message", "delete nats x"},
			code: checkError, stderr: "must be connect"},
	}
	t.Setenv("PDP_GATEWAY_CREDENTIAL_FILE", e.gatewayFile)
	t.Setenv("PDP_SERVER", e.server)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCheckCLI(t, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout %s\nstderr %s\nwant %q and %q", code, tt.code, stdout, stderr, tt.stdout, tt.stderr)
			}
			if tt.golden != "" {
				checkDocGolden(t, tt.golden, []byte(stdout), e.expiredAt.Format(time.RFC3339), "2026-12-05T09:20:00Z")
			}
			if strings.Contains(stdout+stderr, e.valid) || strings.Contains(stdout+stderr, e.expired) {
				t.Error("the token was printed")
			}
		})
	}
}

// TestCheckCommandSendsTheMessageBody: --message sends the contract's
// message object, the token in it.
func TestCheckCommandSendsTheMessageBody(t *testing.T) {
	var got atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := string(b)
		got.Store(&s)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"decision_id":"x","allow":false,"status":403,"reasons":[{"code":"destination_unknown","message":"m"}]}`)
	}))
	t.Cleanup(srv.Close)
	tests := []struct{ message, vhost, want string }{
		{"publish nats orders.created", "", `{"message":{"broker":"nats","operation":"publish","destination":"orders.created","token":"tok-1"}}`},
		{"connect rabbitmq", "/", `{"message":{"broker":"rabbitmq","operation":"connect","vhost":"/","token":"tok-1"}}`},
	}
	for _, tt := range tests {
		args := []string{"--server", srv.URL, "--token-file", "-", "--message", tt.message}
		if tt.vhost != "" {
			args = append(args, "--vhost", tt.vhost)
		}
		_, stderr, code := runCheckCLI(t, "tok-1\n", args...)
		if code != checkDenied || got.Load() == nil || *got.Load() != tt.want {
			t.Errorf("%s: exit %d (%s), body %v\nwant %s", tt.message, code, stderr, got.Load(), tt.want)
		}
	}
}

// TestCheckCommandDecidesMessagesOnARealServer: --message against a real
// server: the message is decided (exit 0 or 1, never "no decision"), and
// the token guardrails apply to it.
func TestCheckCommandDecidesMessagesOnARealServer(t *testing.T) {
	e := startClientEnv(t)
	tests := []struct {
		name, message, token string
		codes                []int
		stdout               string
	}{
		{"ok/connect is allowed", "connect nats", e.valid, []int{checkAllowed}, `"module": "grants.authorization_code"`},
		{"fail/publish to a destination no entry names", "publish nats payments.created", e.valid, []int{checkDenied}, `"code": "destination_unknown"`},
		{"fail/connect with an expired token", "connect nats", e.expired, []int{checkDenied}, `"code": "token_expired"`},
		{"fail/subscribe with an expired token", "subscribe nats orders.*", e.expired, []int{checkDenied}, `"code": "token_expired"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCheckCLI(t, tt.token, "--server", e.server, "--gateway-credential-file", e.gatewayFile,
				"--token-file", "-", "--message", tt.message)
			if !slices.Contains(tt.codes, code) || !strings.Contains(stdout, tt.stdout) || stderr != "" {
				t.Errorf("exit %d, want one of %v\nstdout %s\nstderr %s\nwant %q", code, tt.codes, stdout, stderr, tt.stdout)
			}
		})
	}
}

// BenchmarkClientDecide measures one decision asked through the client
// package over loopback HTTP (connection reused, the kept decision reused):
// what a service without a gateway pays per request on top of the
// in-process decision (BenchmarkDecideInProcess).
func BenchmarkClientDecide(b *testing.B) {
	tb := newTestbed(b, nil)
	c, err := client.New(client.Options{Server: tb.pdp.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := &client.Request{Method: "GET", URL: "https://api.example.com/v1/accounts/42", RemoteIP: "203.0.113.7",
		Headers: map[string][]string{"Authorization": {"Bearer " + tb.mint(b, "ES256", nil)}, "User-Agent": {"bench/1"}}}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if d, err := c.Decide(ctx, req); err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
	}
}
