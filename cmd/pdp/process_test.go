package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenguard/pdp/internal/devissuer"
)

// processEnv is the files a real pdp process runs on: a config, an issuer
// whose JWKS is a file, and the admin credential.
type processEnv struct {
	dir, config, credFile, addr string
	issuer                      *devissuer.Issuer
}

func newProcessEnv(t *testing.T) *processEnv {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	e := &processEnv{dir: t.TempDir(), addr: freeAddr(t)}
	e.issuer, err = devissuer.New("https://as.example.com", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(e.dir, "jwks.json")
	e.credFile = filepath.Join(e.dir, "admin")
	e.config = filepath.Join(e.dir, "pdp.yaml")
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
policy:
  dir: %s
admin:
  token_file: %s
issuers:
  - issuer: https://as.example.com
    jwks_file: %s
    audiences: [%s]
`, e.addr, filepath.Join(e.dir, "data"), filepath.Join(root, "rego"), e.credFile, jwks, testAudience)
	for name, body := range map[string][]byte{jwks: e.issuer.JWKS(), e.credFile: []byte(adminCredential), e.config: []byte(cfg)} {
		if err := os.WriteFile(name, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *processEnv) start(t *testing.T) *pdpProcess {
	t.Helper()
	p := startPDP(t, e.dir, "serve", "--config", e.config)
	for range 1000 {
		resp, err := http.Get("http://" + e.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pdp never became ready\n%s", p.stderr)
	return nil
}

func (e *processEnv) decide(t *testing.T, tok string) (allow bool, codes string) {
	t.Helper()
	body := `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42","headers":{"authorization":"Bearer ` + tok + `"}}}`
	resp, err := http.Post("http://"+e.addr+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Allow   bool `json:"allow"`
		Reasons []struct {
			Code string `json:"code"`
		} `json:"reasons"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Allow, fmt.Sprint(d.Reasons)
}

// pdpCLI runs a pdp command in-process and returns its output.
func pdpCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestRevocationSurvivesKill9 proves durability: a revocation acknowledged
// with 201 is in force after the process is killed with SIGKILL and a new
// one starts on the same data dir.
func TestRevocationSurvivesKill9(t *testing.T) {
	e := newProcessEnv(t)
	tok, err := e.issuer.Mint(map[string]any{"aud": testAudience, "sub": "carol", "client_id": "web", "scope": "accounts:read", "iat": time.Now().Add(-time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(t)
	if allow, codes := e.decide(t, tok); !allow {
		t.Fatalf("before the revocation: denied %s", codes)
	}
	out, err := pdpCLI(t, "revoke", "subject", "carol", "--iss", "https://as.example.com", "--reason", "account disabled",
		"--server", "http://"+e.addr, "--admin-token-file", e.credFile)
	if err != nil || !strings.Contains(out, `"kind": "subject"`) {
		t.Fatalf("pdp revoke subject: %v\n%s", err, out)
	}
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL, right after the 201
		t.Fatal(err)
	}
	_ = p.cmd.Wait()

	e.start(t)
	if allow, codes := e.decide(t, tok); allow || !strings.Contains(codes, "subject_revoked") {
		t.Errorf("after kill -9 and restart: allow=%v %s, want subject_revoked", allow, codes)
	}
	out, err = pdpCLI(t, "revoke", "list", "--kind", "subject", "--server", "http://"+e.addr, "--admin-token-file", e.credFile)
	if err != nil || !strings.Contains(out, `"value": "carol"`) {
		t.Errorf("pdp revoke list after restart: %v\n%s", err, out)
	}
}

// TestSecondProcessOnTheSameDataDirFailsFast: the bbolt file lock is held
// by the first process; the second must exit with a clear message.
func TestSecondProcessOnTheSameDataDirFailsFast(t *testing.T) {
	e := newProcessEnv(t)
	e.start(t)
	second := startPDP(t, e.dir, "serve", "--config", e.config, "--listen", freeAddr(t))
	done := make(chan error, 1)
	go func() { done <- second.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(second.stderr.String(), "in use by another pdp process") {
			t.Errorf("second pdp: err=%v stderr=%s", err, second.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second pdp on the same data dir hangs")
	}
}

func TestRevokeCLIReportsProblems(t *testing.T) {
	e := newProcessEnv(t)
	e.start(t)
	wrong := filepath.Join(e.dir, "wrong")
	if err := os.WriteFile(wrong, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pdpCLI(t, "revoke", "list", "--server", "http://"+e.addr, "--admin-token-file", wrong); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong credential: err = %v, want a 401", err)
	}
	if _, err := pdpCLI(t, "revoke", "delete", "no-such-id", "--server", "http://"+e.addr, "--admin-token-file", e.credFile); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown id: err = %v, want a 404", err)
	}
	out, err := pdpCLI(t, "revoke", "user-event", "logout", "--iss", "https://as.example.com", "--sub", "dan",
		"--server", "http://"+e.addr, "--admin-token-file", e.credFile)
	if err != nil || !strings.Contains(out, "user-event:logout") {
		t.Errorf("user-event: %v %s", err, out)
	}
}

func TestConfigValidateAndPrint(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	good := filepath.Join(dir, "good.yaml")
	_ = os.WriteFile(bad, []byte("listen: nope\ndecision_timeout: -1s\nissuers:\n  - issuer: https://a.example\n    jwks_uri: http://a.example/jwks\n"), 0o600)
	_ = os.WriteFile(good, []byte("issuers:\n  - issuer: https://a.example\n    jwks_uri: https://a.example/jwks?token=s3cret\n    audiences: [https://api.example.com]\npolicy:\n  bundles:\n    - name: main\n      url: https://user:pw@bundles.example.com/b.tar.gz\n  dir: \"\"\n"), 0o600)
	_, err := pdpCLI(t, "config", "validate", "--config", bad)
	if err == nil {
		t.Fatal("an invalid config validated")
	}
	for _, want := range []string{"listen:", "decision_timeout:", "issuers[0].jwks_uri:", "issuers[0].audiences:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validate does not name %q:\n%v", want, err)
		}
	}
	if out, err := pdpCLI(t, "config", "validate", "--config", good); err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("validate good: %v %s", err, out)
	}
	out, err := pdpCLI(t, "config", "print", "--config", good, "--environment", "staging")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"environment: staging", "decision_timeout: 100ms", "listen: 127.0.0.1:8181"} {
		if !strings.Contains(out, want) {
			t.Errorf("print lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"s3cret", "pw@"} {
		if strings.Contains(out, secret) {
			t.Errorf("print shows %q:\n%s", secret, out)
		}
	}
}

// TestServeExtAuthzListener starts a real pdp with ext_authz.grpc_listen
// and asks its gRPC health service, then stops it with SIGTERM.
func TestServeExtAuthzListener(t *testing.T) {
	e := newProcessEnv(t)
	grpcAddr := freeAddr(t)
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(cfg, []byte("ext_authz:\n  grpc_listen: "+grpcAddr+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.start(t)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var status healthpb.HealthCheckResponse_ServingStatus
	for range 200 {
		resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err == nil {
			if status = resp.GetStatus(); status == healthpb.HealthCheckResponse_SERVING {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("ext_authz health = %v\n%s", status, p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("pdp with ext_authz exited with %v after SIGTERM\n%s", err, p.stderr)
	}
}
