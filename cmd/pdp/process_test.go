package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// TestServeRefusesAmbiguousFraming runs the real process on each kind of
// HTTP listener it opens (plain and TLS) and sends a request with both
// Content-Length and Transfer-Encoding whose chunked body ends early, so
// that an authenticated admin GET follows it on the connection. The
// process must answer the first request 400 and close the connection: the
// smuggled GET is never answered.
func TestServeRefusesAmbiguousFraming(t *testing.T) {
	plain := newProcessEnv(t)
	plain.start(t)

	secure := newProcessEnv(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "pdp", true)
	certFile, keyFile := filepath.Join(secure.dir, "srv.crt"), filepath.Join(secure.dir, "srv.key")
	cfg, err := os.ReadFile(secure.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile)...)
	for name, body := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, secure.config: cfg} {
		if err := os.WriteFile(name, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	p := startPDP(t, secure.dir, "serve", "--config", secure.config)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: time.Second}
	for i := 0; ; i++ {
		resp, err := client.Get("https://" + secure.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i == 1000 {
			t.Fatalf("pdp never became ready over TLS\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	admin := "GET /v1/admin/revocations HTTP/1.1\r\nHost: pdp\r\nAuthorization: Bearer " + adminCredential + "\r\n\r\n"
	for _, l := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"http", func() (net.Conn, error) { return net.Dial("tcp", plain.addr) }},
		{"https", func() (net.Conn, error) { return tls.Dial("tcp", secure.addr, tlsConfig) }},
	} {
		for _, tt := range []struct {
			name, head string
			status     int
		}{
			{"fail/Content-Length and Transfer-Encoding chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", 400},
			{"fail/Transfer-Encoding chunked, chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked, chunked\r\n", 501},
		} {
			t.Run(l.name+"/"+tt.name, func(t *testing.T) {
				conn, err := l.dial()
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				raw := "POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Type: application/json\r\n" + tt.head + "\r\n0\r\n\r\n" + admin
				if _, err := io.WriteString(conn, raw); err != nil {
					t.Fatal(err)
				}
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				all, err := io.ReadAll(conn)
				if err != nil && !strings.Contains(err.Error(), "connection reset") {
					t.Fatalf("the connection was not closed: %v (read %q)", err, all)
				}
				if n := strings.Count(string(all), "HTTP/1.1 "); n != 1 || !strings.HasPrefix(string(all), fmt.Sprintf("HTTP/1.1 %d ", tt.status)) {
					t.Fatalf("answers %q, want one %d", all, tt.status)
				}
				if strings.Contains(string(all), "revocations\"") {
					t.Fatal("the smuggled admin GET was answered")
				}
			})
		}
	}
}
