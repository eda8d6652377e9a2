//go:build integration

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

// lookServer finds a gateway binary on PATH or at one of the usual places.
func lookServer(t *testing.T, name string, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed (.ci/run installs Debian's package)", name)
	return ""
}

// seenRequest is what the upstream behind a gateway received.
type seenRequest struct {
	Method, Path string
	Header       http.Header
}

// recordingUpstream is the API behind the gateway: it answers with the
// tokenguard headers it got and remembers every request.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"scopes":  r.Header.Get("X-Tokenguard-Scopes"),
			"subject": r.Header.Get("X-Tokenguard-Subject"),
			"path":    r.URL.Path,
		})
	}))
	t.Cleanup(u.Close)
	return u
}

// saw reports whether the upstream received method path.
func (u *recordingUpstream) saw(method, path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.seen {
		if s.Method == method && s.Path == path {
			return true
		}
	}
	return false
}

func (u *recordingUpstream) last() seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return seenRequest{}
	}
	return u.seen[len(u.seen)-1]
}

// gatewayClient sends requests for api.example.com through a gateway.
type gatewayClient struct{ base string }

func (g gatewayClient) waitUp(t *testing.T) {
	t.Helper()
	for range 500 {
		if resp, err := http.Get(g.base + "/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the gateway did not start")
}

func (g gatewayClient) send(t *testing.T, method, path string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.base+path, nil)
	req.Host = "api.example.com"
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// spoofedRequestLine is every forwarded request-line header of both
// families, naming an allowed request: GET https://api.example.com/v1/accounts/42.
func spoofedRequestLine() map[string]string {
	return map[string]string{
		"X-Forwarded-Method": "GET", "X-Original-Method": "GET",
		"X-Forwarded-Uri": "/v1/accounts/42", "X-Original-URI": "/v1/accounts/42",
		"X-Original-URL":   "http://api.example.com/v1/accounts/42",
		"X-Forwarded-Host": "api.example.com", "X-Original-Host": "api.example.com",
		"X-Forwarded-Proto": "http", "X-Original-Proto": "http",
	}
}

// testForwardAuthAttacks sends the attacks of a client that describes the
// request itself through a real gateway: none of them may reach the
// upstream, and a client's own X-Tokenguard-* never does.
func testForwardAuthAttacks(t *testing.T, tb *testbed, gw gatewayClient, up *recordingUpstream) {
	read := func(t *testing.T, extra map[string]string) map[string]string {
		h := spoofedRequestLine()
		h["Authorization"] = "Bearer " + tb.mint(t, "ES256", nil)
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	t.Run("fail/client-supplied X-Forwarded-Method: GET on a DELETE never reaches the upstream", func(t *testing.T) {
		resp, body := gw.send(t, "DELETE", "/v1/accounts/42", read(t, nil))
		if resp.StatusCode != 403 || up.saw("DELETE", "/v1/accounts/42") {
			t.Fatalf("= %d %s; upstream saw the DELETE: %v", resp.StatusCode, body, up.saw("DELETE", "/v1/accounts/42"))
		}
	})
	t.Run("fail/client-supplied X-Forwarded-Uri naming an allowed path on another path never reaches the upstream", func(t *testing.T) {
		resp, body := gw.send(t, "GET", "/v1/admin/users", read(t, nil))
		if resp.StatusCode != 403 || up.saw("GET", "/v1/admin/users") {
			t.Fatalf("= %d %s; upstream saw it: %v", resp.StatusCode, body, up.saw("GET", "/v1/admin/users"))
		}
	})
	t.Run("fail/client-supplied X-Forwarded-Host naming the API on another host never reaches the upstream", func(t *testing.T) {
		// 403 route_unknown from tokenguard, or the gateway's own answer
		// for a host it does not serve (nginx: 421; Caddy: an empty 200).
		resp, body := gw.send(t, "GET", "/v1/accounts/7", read(t, map[string]string{"Host": "evil.example"}))
		if up.saw("GET", "/v1/accounts/7") {
			t.Fatalf("= %d %s; upstream saw it: %v", resp.StatusCode, body, up.saw("GET", "/v1/accounts/7"))
		}
	})
	t.Run("fail/client-supplied X-Real-IP and X-Forwarded-For do not pass an IP allow-list", func(t *testing.T) {
		prover, _ := dpoptest.NewProver("ES256")
		tok := tb.mint(t, "ES256", map[string]any{"client_id": "payments-job", "cnf": map[string]any{"jkt": prover.JKT()},
			"exp": time.Now().Add(10 * time.Minute).Unix()})
		headers := func(t *testing.T) map[string]string {
			proof, _ := prover.Proof("GET", "http://api.example.com/v1/accounts/9", tok)
			return map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof}
		}
		// Control: from inside the allow-list, as a trusted gateway reports
		// it, the same token is allowed.
		req, _ := http.NewRequest("GET", tb.pdp.URL+"/v1/forward-auth", nil)
		for k, v := range headers(t) {
			req.Header.Set(k, v)
		}
		for k, v := range map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/v1/accounts/9", "X-Original-Proto": "http",
			"X-Real-IP": "10.20.1.1", "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/accounts/9", "X-Forwarded-Proto": "http",
			"X-Forwarded-Host": "api.example.com", "X-Forwarded-For": "10.20.1.1"} {
			req.Header.Set(k, v)
		}
		req.Host = "api.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		control, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("control: the trusted gateway's report of 10.20.1.1 = %d %s, want 200", resp.StatusCode, control)
		}
		h := headers(t)
		h["X-Real-IP"], h["X-Forwarded-For"] = "10.20.1.1", "10.20.1.1"
		resp, body := gw.send(t, "GET", "/v1/accounts/9", h)
		if resp.StatusCode != 403 || up.saw("GET", "/v1/accounts/9") {
			t.Fatalf("= %d %s; upstream saw it: %v", resp.StatusCode, body, up.saw("GET", "/v1/accounts/9"))
		}
	})
	t.Run("fail/a raw # in the request target never reaches the upstream", func(t *testing.T) {
		// Go's server keeps "#..." in the path, where path.Clean climbs.
		target := "/v1/accounts/42#/../../admin/users"
		conn, err := net.Dial("tcp", strings.TrimPrefix(gw.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n",
			target, tb.mint(t, "ES256", nil))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 || up.saw("GET", target) {
			t.Fatalf("= %d; upstream saw it: %v", resp.StatusCode, up.saw("GET", target))
		}
	})
	t.Run("fail/a client's own X-Tokenguard-* never reaches the upstream", func(t *testing.T) {
		resp, body := gw.send(t, "GET", "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tb.mint(t, "ES256", nil),
			"X-Tokenguard-Actor": "admin", "X-Tokenguard-Subject": "mallory", "X-Tokenguard-Scopes": "accounts:write"})
		if resp.StatusCode != 200 {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
		got := up.last().Header
		if got.Get("X-Tokenguard-Subject") != "alice" || got.Get("X-Tokenguard-Scopes") != "accounts:read" || got.Get("X-Tokenguard-Actor") != "" {
			t.Fatalf("upstream got subject %q scopes %q actor %q", got.Get("X-Tokenguard-Subject"), got.Get("X-Tokenguard-Scopes"), got.Get("X-Tokenguard-Actor"))
		}
	})
}

// testOtherHostsOfTheRouteTable sends, through a gateway that fronts
// api.example.com, requests naming billing.example.com, another host of the
// route table (newGuardrailTestbed) whose route is open to the token sent:
// the gateway must refuse them (or answer them itself), never have them
// decided for that host and sent to api.example.com's upstream.
func testOtherHostsOfTheRouteTable(t *testing.T, tb *testbed, gw gatewayClient, upstream *recordingUpstream) {
	billing := tb.mint(t, "ES256", map[string]any{"aud": "https://billing.example.com", "scope": "billing:read"})
	tests := []struct {
		name, host string
	}{
		{"fail/Host of another API in the route table", "billing.example.com"},
		{"fail/Host of another API, upper case", "BILLING.example.com"},
		{"fail/Host of another API, trailing dot", "billing.example.com."},
		{"fail/Host of another API with a port", "billing.example.com:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := gw.send(t, "GET", "/v1/admin/users", map[string]string{"Host": tt.host, "Authorization": "Bearer " + billing})
			if up := upstream.saw("GET", "/v1/admin/users"); up {
				t.Fatalf("= %d %s; upstream saw it: %v", resp.StatusCode, body, up)
			}
		})
	}
	t.Run("fail/absolute-form request target naming another API", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(gw.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET http://billing.example.com/v1/admin/users HTTP/1.1\r\nHost: api.example.com\r\n"+
			"Authorization: Bearer %s\r\nConnection: close\r\n\r\n", billing)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if up := upstream.saw("GET", "/v1/admin/users"); up {
			t.Fatalf("= %d; upstream saw it: %v", resp.StatusCode, up)
		}
	})
	t.Run("ok/control: the same token on its own host is decided allow", func(t *testing.T) {
		own := tb.mint(t, "ES256", map[string]any{"aud": "https://billing.example.com", "scope": "billing:read"})
		if d := tb.decide(t, bearer(own), at("GET", "https://billing.example.com/v1/admin/users")); !d.Allow {
			t.Fatalf("= %+v", d)
		}
	})
}
