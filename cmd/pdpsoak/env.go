package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tokenguard/pdp/internal/cpuset"
	"github.com/tokenguard/pdp/internal/devissuer"
)

// What the pdp is configured for and the traffic asks.
const (
	issuerURL      = "https://as.example.com"
	transmitterURL = "https://tx.example.com"
	setAudience    = "https://pdp.example.com/ssf"
	audience       = "https://api.example.com"
	apiURL         = "https://api.example.com/v1/accounts/42"
	clientID       = "soak-app"
	userAgent      = "pdpsoak/1"
	remoteIP       = "203.0.113.7"    // every request's client: fingerprints stay put
	tokenTTL       = 50 * time.Minute // inside the shipped lifetime cap (1h)
)

// env is one run's files: issuer and transmitter keys, a copy of the
// policy that the run edits, the config, the data dir.
type env struct {
	o           options
	dir         string
	addr        string
	policyDir   string
	config      string
	adminToken  string
	issuer      *devissuer.Issuer
	transmitter *devissuer.Issuer
}

func newEnv(o options) (*env, error) {
	dir, err := os.MkdirTemp("", "pdpsoak-")
	if err != nil {
		return nil, err
	}
	e := &env{o: o, dir: dir, policyDir: filepath.Join(dir, "policy"), adminToken: rand.Text()}
	fail := func(err error) (*env, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if e.issuer, err = devissuer.New(issuerURL, "ES256"); err != nil {
		return fail(err)
	}
	if e.transmitter, err = devissuer.New(transmitterURL, "ES256"); err != nil {
		return fail(err)
	}
	if e.addr, err = freeAddr(); err != nil {
		return fail(err)
	}
	files := map[string][]byte{
		"jwks.json":    e.issuer.JWKS(),
		"tx-jwks.json": e.transmitter.JWKS(),
		"admin-token":  []byte(e.adminToken + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return fail(err)
		}
	}
	if err := copyPolicy(o.PolicyDir, e.policyDir); err != nil {
		return fail(err)
	}
	if err := e.editPolicy(0); err != nil {
		return fail(err)
	}
	e.config = filepath.Join(dir, "pdp.yaml")
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
environment: prod
policy:
  dir: %s
issuers:
  - issuer: %s
    jwks_file: %s
    audiences: [%s]
    algorithms: [ES256]
    access_token_type: at+jwt
admin:
  token_file: %s
ssf:
  transmitters:
    - issuer: %s
      jwks_file: %s
      audience: %s
      token_issuers: [%s]
decision_logs:
  console: false
log:
  level: warn
`, e.addr, filepath.Join(dir, "data"), e.policyDir, issuerURL, filepath.Join(dir, "jwks.json"), audience,
		filepath.Join(dir, "admin-token"), transmitterURL, filepath.Join(dir, "tx-jwks.json"), setAudience, issuerURL)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		return fail(err)
	}
	return e, nil
}

// copyPolicy copies the Rego modules (not their tests) and data.json.
func copyPolicy(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !(strings.HasSuffix(p, ".rego") && !strings.HasSuffix(p, "_test.rego")) && rel != "data.json" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
}

// editPolicy rewrites data.json with the soak's client and a second
// client whose allowed network changes with n: a real data change, which
// the pdp validates and activates, that no request of the soak depends on.
// The new file is renamed into place, as a deployment tool would.
func (e *env) editPolicy(n int) error {
	src := filepath.Join(e.o.PolicyDir, "data.json")
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	pdp, _ := data["pdp"].(map[string]any)
	if pdp == nil {
		return fmt.Errorf("%s has no pdp object", src)
	}
	clients, _ := pdp["clients"].(map[string]any)
	if clients == nil {
		clients = map[string]any{}
	}
	clients[clientID] = map[string]any{"allowed_cidrs": []string{"198.51.100.0/24", "203.0.113.0/24"}}
	clients["soak-edited"] = map[string]any{"allowed_cidrs": []string{fmt.Sprintf("10.%d.0.0/16", n%256)}}
	pdp["clients"] = clients
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(e.dir, "data.json.new")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(e.policyDir, "data.json"))
}

// server is the running pdp.
type server struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs the pdp and waits until it is ready.
func (e *env) start(ctx context.Context) (*server, error) {
	out, err := os.OpenFile(filepath.Join(e.dir, "pdp.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd, err := cpuset.Command(e.o.ServerCPUs, e.o.PDP, "serve", "--config", e.config)
	if err != nil {
		out.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", e.o.PDP, err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(s.done)
	}()
	if err := e.waitReady(ctx, s); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (e *env) waitReady(ctx context.Context, s *server) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("the pdp exited before it was ready; see %s", filepath.Join(e.dir, "pdp.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get("http://" + e.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("the pdp was not ready after 2 minutes; see %s", filepath.Join(e.dir, "pdp.log"))
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// kill ends the process at once (SIGKILL), as a crash would.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop ends the process: SIGTERM, then SIGKILL after 10 seconds.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.kill()
	}
}

// freeAddr returns a loopback address with a free port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
