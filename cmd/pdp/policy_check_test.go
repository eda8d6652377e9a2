package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

// brokenLifetimeData is the shipped data.json with the typo.
func brokenLifetimeData(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile("../../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Replace(string(raw), `"max_lifetime": "1h"`, `"max_lifetime": "30 minutes"`, 1)
	if out == string(raw) {
		t.Fatal("rego/data.json no longer sets lifetimes.default.max_lifetime to 1h")
	}
	return out
}

// bundleOf writes the .rego files and data.json of dir as a .tar.gz bundle.
func bundleOf(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if err := tw.WriteHeader(&tar.Header{Name: "/" + filepath.ToSlash(rel), Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = errors.Join(tw.Close(), gz.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyCheckExitCodes runs `pdp policy check` as a CI job would: 0 for
// a policy the server would activate, 1 (with every configuration error on
// stdout) for one it would refuse, 2 for a usage error or a path that
// cannot be read.
// The answers docs/policies.md quotes for refused policy data.
var (
	policyCheckGolden         = docGolden("policy-check-refused.json", "TestPolicyCheckExitCodes")
	policyRefusedStatusGolden = docGolden("status-policy-refused.json", "TestBrokenPolicyDataInAWatchedDirIsRefused")
)

func TestPolicyCheckExitCodes(t *testing.T) {
	good, _ := filepath.Abs("../../rego")
	broken := policyWithData(t, brokenLifetimeData(t))
	goodBundle := bundleOf(t, policyWithData(t, mustRead(t, "../../rego/data.json")))
	brokenBundle := bundleOf(t, broken)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each must appear
		stderr []string
	}{
		{name: "ok/the shipped policy", args: []string{good}, code: 0, stdout: []string{"is valid"}},
		{name: "ok/the shipped policy as a bundle", args: []string{goodBundle}, code: 0, stdout: []string{"is valid"}},
		{name: "ok/the shipped policy with its tests", args: []string{"--test", good}, code: 0},
		{name: "fail/a duration that is not one", args: []string{broken}, code: 1,
			stdout: []string{"pdp.lifetimes.default.max_lifetime: must be a positive duration"}, stderr: []string{"1 configuration error(s)"}},
		{name: "fail/a bundle with a duration that is not one", args: []string{brokenBundle}, code: 1,
			stdout: []string{"pdp.lifetimes.default.max_lifetime: must be a positive duration"}},
		{name: "fail/json output", args: []string{"--format", "json", broken}, code: 1,
			stdout: []string{`"valid": false`, `"path": "pdp.lifetimes.default.max_lifetime"`}},
		{name: "fail/a file over max-file-bytes", args: []string{"--max-file-bytes", "1000", good}, code: 1,
			stderr: []string{"policy.max_file_bytes"}},
		{name: "fail/a bundle over max-total-bytes", args: []string{"--max-total-bytes", "1000", "--max-file-bytes", "100", goodBundle}, code: 1,
			stderr: []string{"policy.max_"}},
		{name: "fail/a path that does not exist", args: []string{filepath.Join(good, "nope")}, code: 2, stderr: []string{"no such file"}},
		{name: "fail/no path", args: nil, code: 2, stderr: []string{"needs one DIR or BUNDLE"}},
		{name: "fail/an unknown flag", args: []string{"--strict", good}, code: 2, stderr: []string{"unknown flag"}},
		{name: "fail/an unknown format", args: []string{"--format", "yaml", good}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"policy", "check"}, tt.args...)...)
			cmd.Env = append(os.Environ(), execMainEnv+"=1")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(strings.Join(tt.args, " "), "json") {
				var res checkResult
				if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil || res.Valid || len(res.Errors) != 1 {
					t.Errorf("json output = %+v, %v", res, err)
				}
				checkDocGolden(t, policyCheckGolden, []byte(stdout.String()))
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeRefusesBrokenPolicyDataAtFirstStart: a first start whose policy
// data has configuration errors exits non-zero, listing them, rather than
// answering policy_error to every request.
func TestServeRefusesBrokenPolicyDataAtFirstStart(t *testing.T) {
	dir := t.TempDir()
	policyDir := policyWithData(t, brokenLifetimeData(t))
	iss, err := devissuer.New("https://as.example.com", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, iss.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pdp.yaml")
	yaml := "listen: " + freeAddr(t) + "\ndata_dir: " + filepath.Join(dir, "data") + "\npolicy:\n  dir: " + policyDir +
		"\nissuers:\n  - issuer: https://as.example.com\n    jwks_file: " + jwks + "\n    audiences: [https://api.example.com]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPDP(t, dir, "serve", "--config", cfg)
	if err := p.cmd.Wait(); err == nil {
		t.Fatal("pdp started with broken policy data")
	}
	if !strings.Contains(p.stderr.String(), "pdp.lifetimes.default.max_lifetime: must be a positive duration") {
		t.Errorf("stderr does not list the configuration error:\n%s", p.stderr)
	}
}

// TestBrokenPolicyDataInAWatchedDirIsRefused is the scenario: an
// operator changes lifetimes.default.max_lifetime to "30 minutes" in the
// watched policy directory. The version is refused; the last good one keeps
// deciding; /v1/status lists the error by path; the metric counts it.
func TestBrokenPolicyDataInAWatchedDirIsRefused(t *testing.T) {
	policyDir := policyWithData(t, mustRead(t, "../../rego/data.json"))
	tb := newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = policyDir
		c.Policy.Debounce = 20 * time.Millisecond
	})
	before := tb.decide(t, bearer(tb.mint(t, "ES256", nil)), nil)
	check(t, before, want{allow: true, status: 200})

	if err := os.WriteFile(filepath.Join(policyDir, "data.json"), []byte(brokenLifetimeData(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	var dir map[string]any
	eventually(t, "the edited directory is refused", func() bool {
		_, st := tb.call(t, "GET", "/v1/status", "", "", "")
		sources, _ := st["sources"].([]any)
		if len(sources) != 1 {
			return false
		}
		dir, _ = sources[0].(map[string]any)
		return dir["state"] == "failed"
	})
	_, st := tb.call(t, "GET", "/v1/status", "", "", "")
	if st["active"] == nil {
		t.Errorf("/v1/status has no active policy: %v", st)
	}
	refused, _ := json.Marshal(map[string]any{"active": st["active"], "sources": st["sources"]})
	checkDocGolden(t, policyRefusedStatusGolden, refused, policyDir, "./policy")
	errs, _ := dir["config_errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["path"] != "pdp.lifetimes.default.max_lifetime" ||
		!strings.Contains(errs[0].(map[string]any)["message"].(string), "positive duration") {
		t.Errorf("status of the dir = %v", dir)
	}

	after := tb.decide(t, bearer(tb.mint(t, "ES256", nil)), nil)
	check(t, after, want{allow: true, status: 200})
	if after.Policy.Revision != before.Policy.Revision {
		t.Errorf("revision %s after the refusal, want %s (the last good one)", after.Policy.Revision, before.Policy.Revision)
	}

	resp, err := http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(raw), `pdp_policy_activations_total{result="refused",source="dir"} 1`) {
		t.Errorf("/metrics does not count the refusal:\n%s", grepLines(string(raw), "pdp_policy_activ"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// eventually polls cond, a bounded number of times.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never happened: %s", what)
}
