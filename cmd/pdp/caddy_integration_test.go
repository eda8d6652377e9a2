//go:build integration

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// caddyfile is testdata/gateways/Caddyfile made runnable without root
// paths or certificates: the same forward_auth wiring and the same site
// address (the one host it serves), on a loopback port.
const caddyfile = `{
	admin off
	auto_https off
	storage file_system %[1]s
}
http://api.example.com:%[2]s {
	route {
		request_header -X-Tokenguard-*
		forward_auth %[4]s {
			uri /v1/forward-auth
			header_up -X-Original-*
			header_up -X-Real-Ip
			header_up -X-Ssl-Client-Cert
			header_up -X-Forwarded-Tls-Client-Cert
			copy_headers X-Tokenguard-Scopes X-Tokenguard-Subject X-Tokenguard-Client-Id X-Tokenguard-Grant-Type X-Tokenguard-Actor
		}
		reverse_proxy %[3]s
	}
}
`

// TestIntegrationCaddyForwardAuth runs a real Caddy with forward_auth to
// tokenguard (forward_auth.style caddy) in front of a small upstream, and
// sends real requests, and a client's forged forwarding headers, through it.
func TestIntegrationCaddyForwardAuth(t *testing.T) {
	tb := newTestbed(t, func(c *config.Config) {
		c.ForwardAuth.Style = "caddy"
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32"}
	})
	up := newRecordingUpstream(t)
	gw := startCaddy(t, tb, up)

	t.Run("ok/a valid token reaches the upstream with the effective scopes", func(t *testing.T) {
		resp, body := gw.send(t, "GET", "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tb.mint(t, "ES256", nil)})
		if resp.StatusCode != 200 || !strings.Contains(body, `"scopes":"accounts:read"`) || !strings.Contains(body, `"subject":"alice"`) {
			t.Fatalf("= %d %s", resp.StatusCode, body)
		}
	})
	t.Run("fail/an expired token is stopped with 401 invalid_token", func(t *testing.T) {
		now := time.Now()
		tok := tb.mint(t, "ES256", map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})
		resp, body := gw.send(t, "GET", "/v1/accounts/42", map[string]string{"Authorization": "Bearer " + tok})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || strings.Contains(body, "scopes") {
			t.Fatalf("= %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})
	testForwardAuthAttacks(t, tb, gw, up)
}

// TestIntegrationCaddyDecidesOnlyTheHostsItServes: as with nginx, a client
// naming another host of the route table never reaches the upstream of the
// one host the site serves.
func TestIntegrationCaddyDecidesOnlyTheHostsItServes(t *testing.T) {
	tb := newGuardrailTestbed(t, func(c *config.Config) {
		c.ForwardAuth.Style = "caddy"
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32"}
	})
	up := newRecordingUpstream(t)
	testOtherHostsOfTheRouteTable(t, tb, startCaddy(t, tb, up), up)
}

// startCaddy runs a real Caddy with caddyfile in front of up, asking tb's
// tokenguard, until the test ends.
func startCaddy(t *testing.T, tb *testbed, up *recordingUpstream) gatewayClient {
	t.Helper()
	caddy := lookServer(t, "caddy", "/usr/bin/caddy", "/usr/local/bin/caddy")

	dir := t.TempDir()
	listen := freeAddr(t)
	_, port, _ := strings.Cut(listen, ":")
	conf := filepath.Join(dir, "Caddyfile")
	body := fmt.Sprintf(caddyfile, dir, port, strings.TrimPrefix(up.URL, "http://"), strings.TrimPrefix(tb.pdp.URL, "http://"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy stderr: %s", stderr.String())
		}
	})
	gw := gatewayClient{base: "http://" + listen}
	gw.waitUp(t)
	return gw
}
