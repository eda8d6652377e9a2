package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/config"
)

// TestNATSAuthCallout wires messaging.nats as pdp serve does, against a
// real nats-server, with the shipped policy and its example destinations:
// a client connects with its token and publishes where its scopes allow,
// is refused elsewhere, and is disconnected within 5s of a subject
// revocation through the admin API; /v1/status and /metrics tell.
func TestNATSAuthCallout(t *testing.T) {
	dir := t.TempDir()
	issuer, _ := nkeys.CreateAccount()
	issuerPub, _ := issuer.PublicKey()
	seed, _ := issuer.Seed()
	files := map[string]string{"admin": adminCredential, "issuer.nk": string(seed), "auth": "auth-pw", "sys": "sys-pw"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := startNATSServer(t, dir, issuerPub)
	var natsCfg config.NATS
	var esIssuer string
	tb := newTestbed(t, func(c *config.Config) {
		c.Admin.TokenFile = filepath.Join(dir, "admin")
		c.Messaging.NATS = config.NATS{Enabled: true, URL: srv.ClientURL(), User: "auth", PasswordFile: filepath.Join(dir, "auth"),
			IssuerSeedFile: filepath.Join(dir, "issuer.nk"), Account: "APP", SystemUser: "sys",
			SystemPasswordFile: filepath.Join(dir, "sys"), QueueGroup: "tokenguard", CheckInterval: time.Second, MaxConnections: 100}
		natsCfg = c.Messaging.NATS
		for _, is := range c.Issuers {
			if len(is.Algorithms) == 1 && is.Algorithms[0] == "ES256" {
				esIssuer = is.Issuer
			}
		}
	})
	if tb.app.nats == nil {
		t.Fatal("messaging.nats.enabled and no service")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, err := runNATS(ctx, natsCfg, tb.app.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the service did not stop cleanly: %v", err)
		}
	}()
	waitFor(t, func() bool { return tb.app.nats.Status().Connected })

	violations := make(chan error, 4)
	closed := make(chan struct{})
	tok := tb.mint(t, "ES256", map[string]any{"scope": "orders:write accounts:read", "sub": "alice"})
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(tok), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatalf("connect with a valid token: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("orders.created", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("payments.created", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"payments.created"`) {
			t.Errorf("violation = %v, want one for payments.created only", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("a publish outside the granted destinations was not refused")
	}
	if bad, err := nats.Connect(srv.ClientURL(), nats.Token(tb.mint(t, "ES256", map[string]any{"aud": "https://other.example.com"})),
		nats.NoReconnect()); err == nil {
		bad.Close()
		t.Error("a wrong-audience token connected")
	}

	time.Sleep(1100 * time.Millisecond) // the cut-off is after the token's iat
	status, _ := tb.admin(t, "POST", "/v1/admin/revocations",
		fmt.Sprintf(`{"kind":"subject","iss":%q,"value":"alice","reason":"test"}`, esIssuer))
	if status != http.StatusCreated {
		t.Fatalf("revocation: %d", status)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open 5s after the revocation")
	}

	// The server may close the connection before the PDP reads its answer.
	waitFor(t, func() bool { return tb.app.nats.Status().Kicks["closed"] == 1 })
	_, st := tb.call(t, "GET", "/v1/status", "", "", "")
	n, _ := st["nats"].(map[string]any)
	if n == nil || n["connected"] != true || n["kicks"].(map[string]any)["closed"] != 1.0 {
		t.Errorf("status nats = %v", st["nats"])
	}
	resp, err := http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`pdp_nats_kicks_total{result="closed"} 1`, `pdp_nats_authorizations_total{result="allow"} 1`,
		`pdp_nats_authorizations_total{result="deny"} 1`,
		// The connect decisions are counted with the others.
		`pdp_decision_duration_seconds_count 2`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// startNATSServer runs a nats-server whose auth callout is issuerPub.
func startNATSServer(t *testing.T, dir, issuerPub string) *server.Server {
	t.Helper()
	conf := filepath.Join(dir, "nats.conf")
	err := os.WriteFile(conf, []byte(`
listen: "127.0.0.1:-1"
max_control_line: 32KB
accounts {
  AUTH { users: [ { user: auth, password: "auth-pw" } ] }
  APP {}
  SYS { users: [ { user: sys, password: "sys-pw" } ] }
}
system_account: SYS
authorization {
  timeout: 5s
  auth_callout { issuer: `+issuerPub+`, account: AUTH, auth_users: [ auth, sys ] }
}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met in 10s")
}
