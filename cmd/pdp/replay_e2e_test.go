package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"

	"github.com/tokenguard/pdp/internal/replay"
)

// recordDecisions runs a real pdp with console decision logs in format
// logFormat, makes real /v1/decide calls and returns the process log it
// wrote, the decision ids of the calls, by token, and its data dir.
func recordDecisions(t *testing.T, logFormat string) (string, map[string][]string, string) {
	t.Helper()
	e := newProcessEnv(t)
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("decision_logs:\n  console: true\nlog:\n  format: %s\n", logFormat)...)
	if err := os.WriteFile(e.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mint := func(sub string, lifetime time.Duration) string {
		tok, err := e.issuer.Mint(map[string]any{"aud": testAudience, "sub": sub, "client_id": "web", "scope": "accounts:read",
			"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(-time.Minute + lifetime).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	toks := map[string]string{
		"long":    mint("alice", 50*time.Minute), // within 1h, over a tightened 30m
		"short":   mint("bob", 10*time.Minute),
		"revoked": mint("carol", 10*time.Minute),
	}
	p := e.start(t)
	ids := map[string][]string{}
	decide := func(name string, wantAllow bool) {
		body := `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42","headers":{"authorization":"Bearer ` + toks[name] + `"}}}`
		resp, err := http.Post("http://"+e.addr+"/v1/decide", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d struct {
			ID      string `json:"decision_id"`
			Allow   bool   `json:"allow"`
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		if d.Allow != wantAllow {
			t.Fatalf("%s token: allow = %v %v, want %v", name, d.Allow, d.Reasons, wantAllow)
		}
		ids[name] = append(ids[name], d.ID)
	}
	for range 3 {
		decide("long", true) // the later ones reuse the first decision
	}
	decide("short", true)
	out, err := pdpCLI(t, "revoke", "subject", "carol", "--iss", "https://as.example.com", "--reason", "left",
		"--server", "http://"+e.addr, "--admin-token-file", e.credFile)
	if err != nil {
		t.Fatalf("pdp revoke: %v\n%s", err, out)
	}
	decide("revoked", false)
	decide("revoked", false)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	log := p.stderr.String()
	for _, tok := range toks {
		if strings.Contains(log, tok) {
			t.Fatal("the process log holds a token")
		}
	}
	return log, ids, filepath.Join(e.dir, "data")
}

// stricterPolicy is the shipped policy with the default token lifetime
// tightened to 30 minutes.
func stricterPolicy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../rego")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	tightened := strings.Replace(string(data), `"default": {"max_lifetime": "1h", "max_age": "1h"}`, `"default": {"max_lifetime": "30m", "max_age": "1h"}`, 1)
	if tightened == string(data) {
		t.Fatal("rego/data.json has no default lifetime to tighten")
	}
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(tightened), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// replayCLI runs pdp replay in-process: its stdout, stderr and exit
// status.
func replayCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"replay"}, args...))
	err := root.Execute()
	var exit *opacmd.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.Exit
	}
	t.Fatalf("pdp replay: %v", err)
	return "", "", 0
}

// TestReplayOfARealServersDecisionLog is the end-to-end test:
// decisions a real server logged to its console, replayed against a
// policy with a tightened lifetime, exit 3 with the expected new denials;
// the revoked token's decisions answer as recorded, with no store.
func TestReplayOfARealServersDecisionLog(t *testing.T) {
	strict := stricterPolicy(t)
	for _, format := range []string{"json", "text"} {
		t.Run("ok/"+format+" process log", func(t *testing.T) {
			log, ids, dataDir := recordDecisions(t, format)
			dir := t.TempDir()
			plain := filepath.Join(dir, "pdp.log")
			if err := os.WriteFile(plain, []byte(log), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := replayCLI(t, "--policy", strict, "--decisions", plain, "--format", "json", "--max-new-denials", "2")
			if code != 3 {
				t.Fatalf("exit %d, want 3\nstdout: %s\nstderr: %s\nlog:\n%s", code, stdout, stderr, log)
			}
			var sum replay.Summary
			if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
				t.Fatalf("output is not the summary: %v\n%s", err, stdout)
			}
			if sum.Decisions != 6 || sum.Evaluated != 6 || sum.NewDenials != 3 || sum.Unchanged != 3 || sum.NewAllows != 0 || sum.ChangedReasons != 0 {
				t.Errorf("summary = %+v, want 6 decisions: 3 new denials, 3 unchanged\nlog:\n%s", sum, log)
			}
			if c := sum.ByReason["lifetime_exceeded"]; c == nil || c.NewDenials != 3 {
				t.Errorf("by_reason = %v", sum.ByReason)
			}
			if c := sum.ByClient["web"]; c == nil || c.NewDenials != 3 {
				t.Errorf("by_client = %v", sum.ByClient)
			}
			if c := sum.ByRoute["read accounts"]; c == nil || c.NewDenials != 3 {
				t.Errorf("by_route = %v", sum.ByRoute)
			}
			got := slices.Sorted(slices.Values(sum.Examples.NewDenials))
			if want := slices.Sorted(slices.Values(ids["long"])); !slices.Equal(got, want) {
				t.Errorf("examples of new denials = %v, want the long token's decisions %v", got, want)
			}
			if !strings.Contains(stderr, "3 new denials, more than --max-new-denials 2") {
				t.Errorf("stderr = %q", stderr)
			}

			// The same log gzip'ed, under a gate the denials stay within,
			// against the shipped policy: nothing changes.
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = io.WriteString(zw, log)
			_ = zw.Close()
			gz := filepath.Join(dir, "pdp.log.gz")
			if err := os.WriteFile(gz, z.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if stdout, stderr, code := replayCLI(t, "--policy", strict, "--decisions", gz, "--max-new-denials", "3"); code != 0 ||
				!strings.Contains(stdout, "new denials        3") {
				t.Errorf("gzip'ed, --max-new-denials 3: exit %d\n%s%s", code, stdout, stderr)
			}
			// With --data-dir the built-ins read the server's store (now
			// stopped), which holds the revocation too.
			if stdout, stderr, code := replayCLI(t, "--policy", strict, "--decisions", plain, "--format", "json", "--data-dir", dataDir); code != 0 ||
				!strings.Contains(stdout, `"new_denials": 3,`) || !strings.Contains(stdout, `"new_allows": 0,`) {
				t.Errorf("with --data-dir: exit %d\n%s%s", code, stdout, stderr)
			}
			if stdout, stderr, code := replayCLI(t, "--policy", "../../rego", "--decisions", plain, "--format", "json"); code != 0 ||
				!strings.Contains(stdout, `"unchanged": 6`) {
				t.Errorf("against the shipped policy: exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
}

func TestReplayUsageAndUnreadableInput(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.log")
	if err := os.WriteFile(broken, []byte("starting\n{\"msg\":\"Decision Log\",\"decision_id\":\"a\",\"path\":\"tokenguard/main/decision\",\"input\":{\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := t.TempDir()
	if err := os.CopyFS(refused, os.DirFS("../../rego")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(refused, "data.json"), []byte(`{"pdp": {"lifetimes": {"default": {"max_lifetime": "soon"}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"ok/an empty log", []string{"--policy", "../../rego", "--decisions", empty}, 0, "decisions read     0"},
		{"fail/no policy", []string{"--decisions", empty}, 2, "--policy is required"},
		{"fail/no decisions", []string{"--policy", "../../rego"}, 2, "--decisions needs"},
		{"fail/an unknown format", []string{"--policy", "../../rego", "--decisions", empty, "--format", "xml"}, 2, "must be text or json"},
		{"fail/a negative gate", []string{"--policy", "../../rego", "--decisions", empty, "--max-new-denials", "-1"}, 2, "must be 0 or more"},
		{"fail/an unknown flag", []string{"--policy", "../../rego", "--decisions", empty, "--since", "1h"}, 2, "unknown flag"},
		{"fail/a missing log", []string{"--policy", "../../rego", "--decisions", filepath.Join(dir, "nope.log")}, 2, "no such file"},
		{"fail/a malformed decision line names file:line", []string{"--policy", "../../rego", "--decisions", broken}, 2, broken + ":2: "},
		{"fail/a missing policy", []string{"--policy", filepath.Join(dir, "nope"), "--decisions", empty}, 2, "no such file"},
		{"fail/a refused candidate lists its configuration errors", []string{"--policy", refused, "--decisions", empty}, 2, "pdp.lifetimes.default.max_lifetime: must be"},
		{"fail/a data dir that is not a store", []string{"--policy", "../../rego", "--decisions", empty, "--data-dir", filepath.Join(dir, "none")}, 2, "--data-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := replayCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Fatalf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tt.code, tt.want, stdout, stderr)
			}
		})
	}
}
