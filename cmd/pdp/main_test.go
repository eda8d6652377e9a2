package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets tests run the real pdp command as a subprocess: the test
// binary re-executes itself with execMainEnv set and then behaves as pdp.
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const execMainEnv = "PDP_TEST_EXEC_MAIN"

// pdpProcess is a real pdp process started from the test binary.
type pdpProcess struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr *strings.Builder
	addr   string
}

// startPDP runs `pdp args...` in dir with stdout piped.
func startPDP(t *testing.T, dir string, args ...string) *pdpProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &pdpProcess{cmd: cmd, stdout: bufio.NewReader(out), stderr: &strings.Builder{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	curlLine   = regexp.MustCompile(`^curl -s (http://\S+/v1/decide) -H 'Content-Type: application/json' -d '(.*)'$`)
	revokeLine = regexp.MustCompile(`^curl -s (http://\S+/v1/revoke) -u '([^':]+):([^']+)' -d 'token=([A-Za-z0-9._-]+)'$`)
)

// TestDevModeServesItsOwnExamples is README command 1: `pdp serve --dev`
// starts on loopback, prints an allowed and a denied curl command and one
// that revokes the allowed token, and all do what they say; SIGTERM then
// stops it cleanly.
func TestDevModeServesItsOwnExamples(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startPDP(t, root+"/../..", "serve", "--dev", "--listen", addr, "--data-dir", t.TempDir())
	var bodies []struct{ url, body string }
	var revoke []string
	deadline := time.Now().Add(60 * time.Second)
	for (len(bodies) < 2 || revoke == nil) && time.Now().Before(deadline) {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("pdp exited before printing its examples: %v\n%s", err, p.stderr)
		}
		if m := curlLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			bodies = append(bodies, struct{ url, body string }{m[1], m[2]})
		}
		if m := revokeLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			revoke = m[1:]
		}
	}
	if revoke == nil {
		t.Fatal("pdp printed no revoke example")
	}
	if len(bodies) != 2 {
		t.Fatalf("pdp printed %d curl examples, want 2", len(bodies))
	}
	go func() { _, _ = io.Copy(io.Discard, p.stdout) }()
	for i, wantAllow := range []bool{true, false} {
		resp, err := http.Post(bodies[i].url, "application/json", strings.NewReader(bodies[i].body))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Allow   bool `json:"allow"`
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
		}
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != wantAllow {
			t.Errorf("example %d: allow = %v, want %v (%v)", i+1, d.Allow, wantAllow, d.Reasons)
		}
		if !wantAllow && (len(d.Reasons) == 0 || d.Reasons[0].Code != "token_expired") {
			t.Errorf("denied example reasons = %v, want token_expired", d.Reasons)
		}
	}
	// A gateway tried out beside the dev server (loopback) is trusted, so
	// forward-auth works with a fresh dev token (the examples' token was
	// seen from another network: a replay).
	tr, err := http.Get("http://" + addr + "/dev/token?sub=carol&scope=accounts:read")
	if err != nil {
		t.Fatal(err)
	}
	var minted struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(tr.Body).Decode(&minted)
	tr.Body.Close()
	if err != nil || minted.AccessToken == "" {
		t.Fatalf("/dev/token: %v %+v", err, minted)
	}
	tok := []string{"", minted.AccessToken}
	// A loaded machine can exceed the decision timeout (a policy_error
	// deny); a 400 (untrusted) is final.
	status := 0
	for range 3 {
		fa, _ := http.NewRequest("GET", "http://"+addr+"/v1/forward-auth", nil)
		fa.Host = "api.example.com"
		fa.Header.Set("Authorization", "Bearer "+tok[1])
		fa.Header.Set("X-Original-Method", "GET")
		fa.Header.Set("X-Original-URI", "/v1/accounts/42")
		fa.Header.Set("X-Original-Proto", "https")
		faResp, err := http.DefaultClient.Do(fa)
		if err != nil {
			t.Fatal(err)
		}
		faResp.Body.Close()
		if status = faResp.StatusCode; status == 200 || status == 400 {
			break
		}
	}
	if status != 200 {
		t.Errorf("forward-auth in dev mode = %d, want 200", status)
	}
	// The revoke example: the allowed example is denied from then on.
	req, _ := http.NewRequest("POST", revoke[0], strings.NewReader("token="+revoke[3]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(revoke[1], revoke[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("revoke example = %d", resp.StatusCode)
	}
	resp, err = http.Post(bodies[0].url, "application/json", strings.NewReader(bodies[0].body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"token_revoked"`) {
		t.Errorf("the allowed example after the revoke example: %s, want token_revoked", raw)
	}

	resp, err = http.Get("http://" + addr + "/dev/token?sub=bob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/dev/token = %d", resp.StatusCode)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pdp exited with %v after SIGTERM\n%s", err, p.stderr)
		}
	case <-ctx.Done():
		t.Error("pdp did not stop after SIGTERM")
	}
}

func TestDevModeRefusesNonLoopback(t *testing.T) {
	p := startPDP(t, t.TempDir(), "serve", "--dev", "--listen", "0.0.0.0:0", "--data-dir", t.TempDir())
	err := p.cmd.Wait()
	if err == nil || !strings.Contains(p.stderr.String(), "loopback") {
		t.Errorf("pdp serve --dev on 0.0.0.0: err=%v stderr=%s", err, p.stderr)
	}
}

func TestServeRefusesInvalidConfigNamingEveryProblem(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/pdp.yaml"
	if err := os.WriteFile(cfg, []byte("listen: nope\nissuers:\n  - issuer: https://a.example\n    jwks_uri: http://a.example/jwks\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPDP(t, dir, "serve", "--config", cfg)
	err := p.cmd.Wait()
	if err == nil {
		t.Fatal("pdp started with an invalid config")
	}
	for _, want := range []string{"listen:", "issuers[0].jwks_uri:", "issuers[0].audiences:"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr does not name %q:\n%s", want, p.stderr)
		}
	}
}

// TestDevModeHonoursLogFormat: --dev logs text unless --log-format says
// otherwise; with json, every stderr line (decision logs included) is one
// JSON object.
func TestDevModeHonoursLogFormat(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := startPDP(t, root+"/../..", "serve", "--dev", "--log-format", "json", "--listen", addr, "--data-dir", t.TempDir())
	var url, body string
	for url == "" {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("pdp exited before printing its examples: %v\n%s", err, p.stderr)
		}
		if m := curlLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			url, body = m[1], m[2]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, p.stdout) }()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID string `json:"decision_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	logged := false
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "Decision Log" && rec["decision_id"] == d.ID {
			logged = true
			if _, ok := rec["result"].(map[string]any); !ok {
				t.Errorf("decision line without its result: %q", line)
			}
		}
	}
	if !logged {
		t.Errorf("decision %s not on the console:\n%s", d.ID, p.stderr)
	}
}
