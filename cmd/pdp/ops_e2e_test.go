package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/httpapi"
)

// TestOpsEndpointsAcrossListenersAndCredentials: /metrics and /v1/status
// tell how the PDP is set up, so they answer only the ops credential
// (ops.auth), or, without it, the gateway credential on the decision
// listener when decide.auth is set; with ops.listen they leave the
// decision listener. The probes answer everyone everywhere.
func TestOpsEndpointsAcrossListenersAndCredentials(t *testing.T) {
	const (
		gatewayCred = "gateway-credential-for-tests"
		opsCred     = "ops-credential-for-tests"
	)
	dir := t.TempDir()
	gatewayFile, opsFile := filepath.Join(dir, "gateway"), filepath.Join(dir, "ops")
	for f, v := range map[string]string{gatewayFile: gatewayCred, opsFile: opsCred} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Credentials a caller may present.
	type cred struct {
		name   string
		header map[string]string
	}
	creds := []cred{
		{"none", nil},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}},
		{"ops bearer", map[string]string{"Authorization": "Bearer " + opsCred}},
		{"gateway credential", map[string]string{httpapi.GatewayHeader: gatewayCred}},
	}
	setups := []struct {
		name   string
		mutate func(*config.Config)
		// want says, for a listener ("decision" or "ops") and a
		// credential, the status of /metrics and /v1/status; 0: that
		// listener does not exist.
		want func(listener, cred string) int
	}{
		{"no auth, one listener", nil, func(l, _ string) int {
			if l == "ops" {
				return 0
			}
			return 200
		}},
		{"decide.auth, one listener", func(c *config.Config) { c.Decide.Auth.CredentialFile = gatewayFile }, func(l, cr string) int {
			switch {
			case l == "ops":
				return 0
			case cr == "gateway credential":
				return 200
			}
			return 401
		}},
		{"ops.auth and decide.auth, one listener", func(c *config.Config) {
			c.Decide.Auth.CredentialFile = gatewayFile
			c.Ops.Auth.TokenFile = opsFile
		}, func(l, cr string) int {
			switch {
			case l == "ops":
				return 0
			case cr == "ops bearer":
				return 200
			}
			return 401
		}},
		{"ops.listen and ops.auth", func(c *config.Config) {
			c.Ops.Listen = "127.0.0.1:0"
			c.Ops.Auth.TokenFile = opsFile
		}, func(l, cr string) int {
			switch {
			case l == "decision":
				return 404
			case cr == "ops bearer":
				return 200
			}
			return 401
		}},
		{"ops.listen and decide.auth, no ops.auth", func(c *config.Config) {
			c.Ops.Listen = "127.0.0.1:0"
			c.Decide.Auth.CredentialFile = gatewayFile
		}, func(l, _ string) int {
			if l == "decision" {
				return 404
			}
			return 200
		}},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			tb := newTestbed(t, s.mutate)
			listeners := map[string]string{"decision": tb.pdp.URL}
			if tb.app.opsHandler != nil {
				ops := httptest.NewServer(tb.app.opsHandler)
				t.Cleanup(ops.Close)
				listeners["ops"] = ops.URL
			}
			for _, l := range []string{"decision", "ops"} {
				for _, path := range []string{"/metrics", "/v1/status", "/healthz", "/readyz"} {
					for _, c := range creds {
						want := s.want(l, c.name)
						if path == "/healthz" || path == "/readyz" {
							if want != 0 {
								want = 200 // probes answer everyone
							}
						}
						name := l + path + "/" + c.name
						base, ok := listeners[l]
						if (want == 0) != !ok {
							t.Fatalf("%s: listener present = %v, want %v", name, ok, want != 0)
						}
						if !ok {
							continue
						}
						req, _ := http.NewRequest("GET", base+path, nil)
						for k, v := range c.header {
							req.Header.Set(k, v)
						}
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							t.Fatal(err)
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != want {
							t.Errorf("%s = %d, want %d", name, resp.StatusCode, want)
						}
						if resp.StatusCode == 401 && resp.Header.Get("Content-Type") != "application/problem+json" {
							t.Errorf("%s: a 401 that is not problem+json", name)
						}
					}
				}
			}
		})
	}
}
