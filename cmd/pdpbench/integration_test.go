//go:build integration

package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationHarnessSmoke builds pdp and stock opa and runs every
// scenario briefly against both: servers start, decisions check out and
// the table has a row per scenario and peer.
func TestIntegrationHarnessSmoke(t *testing.T) {
	bin := t.TempDir()
	for name, pkg := range map[string]string{"pdp": "../pdp", "opa": "github.com/open-policy-agent/opa"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "results.md")
	o, err := parseFlags([]string{
		"--quick", "--pdp", filepath.Join(bin, "pdp"), "--opa", filepath.Join(bin, "opa"),
		"--policy-dir", "../../rego", "--opa-policy", "../../testdata/bench", "--out", out,
		"--max-steps", "2", "--start-rate", "50", "--measure", "500ms", "--revocations", "2000", "--fingerprints", "2000",
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Step = 500 * time.Millisecond
	var stdout bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := run(t.Context(), o, &stdout, log); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(written, stdout.Bytes()) {
		t.Fatalf("--out file differs from stdout (%v)", err)
	}
	table := stdout.String()
	for _, want := range []string{
		"| warm bearer | opa |", "| warm bearer | tokenguard |",
		"| cold bearer | opa |", "| cold bearer | tokenguard |",
		"| DPoP | tokenguard |", "| revoked-heavy store | tokenguard |",
		"OPA 1.22.3",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "| DPoP | opa |") || strings.Contains(table, "no rate was sustained") {
		t.Errorf("unexpected rows:\n%s", table)
	}
}
