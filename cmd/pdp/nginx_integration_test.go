//go:build integration

package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/store"
)

// nginxConf is testdata/gateways/nginx.conf made runnable without root
// paths: the same auth_request wiring, on loopback ports.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

    server {
        listen %[2]s default_server;
        return 421;
    }

    server {
        listen %[2]s;
        server_name api.example.com;

        location / {
            auth_request /_tokenguard;
            auth_request_set $tg_scopes  $upstream_http_x_tokenguard_scopes;
            auth_request_set $tg_subject $upstream_http_x_tokenguard_subject;
            auth_request_set $tg_client  $upstream_http_x_tokenguard_client_id;
            auth_request_set $tg_grant   $upstream_http_x_tokenguard_grant_type;
            auth_request_set $tg_actor   $upstream_http_x_tokenguard_actor;
            auth_request_set $tg_www     $upstream_http_www_authenticate;
            proxy_set_header X-Tokenguard-Scopes     $tg_scopes;
            proxy_set_header X-Tokenguard-Subject    $tg_subject;
            proxy_set_header X-Tokenguard-Client-Id  $tg_client;
            proxy_set_header X-Tokenguard-Grant-Type $tg_grant;
            proxy_set_header X-Tokenguard-Actor      $tg_actor;
            proxy_set_header X-Tokenguard-Gateway    "";
            proxy_pass %[3]s;
            error_page 403 = @tokenguard_forbidden;
        }

        location @tokenguard_forbidden {
            add_header WWW-Authenticate $tg_www always;
            return 403;
        }

        location = /_tokenguard {
            internal;
            proxy_pass %[4]s/v1/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host              $host;
            proxy_set_header X-Original-URI    $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-Proto  $scheme;
            proxy_set_header X-Real-IP         $remote_addr;
            proxy_set_header X-Forwarded-Method "";
            proxy_set_header X-Forwarded-Uri    "";
            proxy_set_header X-Forwarded-Proto  "";
            proxy_set_header X-Forwarded-Host   "";
            proxy_set_header X-Forwarded-For    "";
            proxy_set_header X-Forwarded-Tls-Client-Cert "";
            proxy_set_header X-Original-URL     "";
            proxy_set_header X-Original-Host    "";
        }
    }
}
`

// TestIntegrationNginxAuthRequest runs a real nginx with auth_request to
// tokenguard (forward_auth.style nginx) in front of a small upstream, and
// sends real requests, and a client's forged forwarding headers, through it.
func TestIntegrationNginxAuthRequest(t *testing.T) {
	tb := newTestbed(t, func(c *config.Config) {
		c.ForwardAuth.Style = "nginx"
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32"}
	})
	upstream := newRecordingUpstream(t)
	gw := startNginx(t, tb, upstream)
	send := func(t *testing.T, path string, headers map[string]string) (*http.Response, string) {
		t.Helper()
		return gw.send(t, "GET", path, headers)
	}

	t.Run("ok/a valid token reaches the upstream with the effective scopes", func(t *testing.T) {
		resp, body := send(t, "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tb.mint(t, "ES256", nil)})
		if resp.StatusCode != 200 || !strings.Contains(body, `"scopes":"accounts:read"`) || !strings.Contains(body, `"subject":"alice"`) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
	})
	t.Run("fail/an expired token is stopped with 401 invalid_token", func(t *testing.T) {
		now := time.Now()
		tok := tb.mint(t, "ES256", map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})
		resp, body := send(t, "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tok})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || strings.Contains(body, "scopes") {
			t.Fatalf("= %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})
	t.Run("fail/a revoked subject is stopped with 401", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "mallory", "iat": time.Now().Add(-time.Minute).Unix()})
		if _, err := tb.app.store.PutRevocation(t.Context(), store.Revocation{Kind: store.KindSubject, Issuer: tb.issuers["ES256"].URL(),
			Value: "mallory", Reason: "disabled", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		resp, _ := send(t, "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tok})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
			t.Fatalf("= %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("fail/a replayed DPoP proof is stopped with 401", func(t *testing.T) {
		prover, _ := dpoptest.NewProver("ES256")
		tok := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
		proof, _ := prover.Proof("GET", "http://api.example.com/v1/accounts/42", tok)
		h := map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof}
		if resp, body := send(t, "/v1/accounts/42", h); resp.StatusCode != 200 {
			t.Fatalf("first use of the proof = %d %s %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
		resp, _ := send(t, "/v1/accounts/42", h)
		if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(c, "DPoP ") || !strings.Contains(c, "invalid_dpop_proof") {
			t.Fatalf("replayed proof = %d %q", resp.StatusCode, c)
		}
	})
	t.Run("fail/a wrong-scope request is stopped with 403 insufficient_scope", func(t *testing.T) {
		resp, _ := send(t, "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tb.mint(t, "ES256", map[string]any{"scope": "profile"})})
		if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 403 || !strings.Contains(c, `error="insufficient_scope"`) {
			t.Fatalf("= %d %q", resp.StatusCode, c)
		}
	})
	testForwardAuthAttacks(t, tb, gw, upstream)
}

// startNginx runs a real nginx with nginxConf in front of upstream, asking
// tb's tokenguard, until the test ends.
func startNginx(t *testing.T, tb *testbed, upstream *recordingUpstream) gatewayClient {
	t.Helper()
	nginx := lookServer(t, "nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx")
	dir := t.TempDir()
	listen := freeAddr(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, listen, upstream.URL, tb.pdp.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", conf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx stderr: %s\nerror.log: %s", stderr.String(), log)
		}
	})
	gw := gatewayClient{base: "http://" + listen}
	gw.waitUp(t)
	return gw
}

// TestIntegrationNginxDecidesOnlyTheHostsItServes: one route table serves
// several hosts, and nginx tells tokenguard the Host the client sent. A
// client of api.example.com naming another host of the table must not get
// that host's route decided and its request sent to api.example.com's
// upstream: nginx refuses a Host it has no server for.
func TestIntegrationNginxDecidesOnlyTheHostsItServes(t *testing.T) {
	tb := newGuardrailTestbed(t, func(c *config.Config) {
		c.ForwardAuth.Style = "nginx"
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32"}
	})
	upstream := newRecordingUpstream(t)
	testOtherHostsOfTheRouteTable(t, tb, startNginx(t, tb, upstream), upstream)
}
