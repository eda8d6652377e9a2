package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStartupBanner: a started PDP says in one structured log line what it
// runs (and in dev mode, also as a readable block); dev mode honours
// --log-format.
func TestStartupBanner(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	p := startPDP(t, root+"/../..", "serve", "--dev", "--listen", freeAddr(t), "--data-dir", dataDir, "--log-format", "json")
	var block strings.Builder
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(block.String(), "tokenguard is running in dev mode") && time.Now().Before(deadline) {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("pdp exited: %v\n%s", err, p.stderr)
		}
		block.WriteString(line)
	}
	for _, want := range []string{"store          bbolt in " + dataDir, "/dev (jwks_file, 1 keys loaded)", "admin API      on", "decision logs  console", "policy         dir ./rego (active), revision "} {
		if !strings.Contains(block.String(), want) {
			t.Errorf("dev banner does not say %q:\n%s", want, block.String())
		}
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	var started map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, `"tokenguard started"`) {
			if err := json.Unmarshal([]byte(line), &started); err != nil {
				t.Fatalf("the banner is not one JSON log line (--log-format json): %v\n%s", err, line)
			}
		}
	}
	if started == nil {
		t.Fatalf("no tokenguard started line:\n%s", p.stderr)
	}
	for _, key := range []string{"version", "store", "issuers", "listeners", "admin_api", "decision_logs", "policy"} {
		if _, ok := started[key]; !ok {
			t.Errorf("the banner has no %s: %v", key, started)
		}
	}
	if s, _ := started["store"].(map[string]any); s["backend"] != "bbolt" || s["data_dir"] != dataDir {
		t.Errorf("store = %v", started["store"])
	}
	if pol, _ := started["policy"].(map[string]any); pol["revision"] == "" || pol["revision"] == "none" {
		t.Errorf("policy = %v, want its revision", started["policy"])
	}
}
