package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var revokeCLILine = regexp.MustCompile(`^pdp revoke subject alice --iss (\S+) --server (\S+) --admin-token-file (\S+)$`)

// TestRevokeAfterTheQuickStart: pdp serve --dev turns the admin API on with
// a generated credential, so pdp revoke works at once; an issuer that is not
// configured is refused unless --force, and dates are checked.
func TestRevokeAfterTheQuickStart(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	p := startPDP(t, root+"/../..", "serve", "--dev", "--listen", freeAddr(t), "--data-dir", dataDir)
	var m []string
	deadline := time.Now().Add(60 * time.Second)
	for m == nil && time.Now().Before(deadline) {
		line, err := p.stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("pdp exited before printing the revoke command: %v\n%s", err, p.stderr)
		}
		m = revokeCLILine.FindStringSubmatch(strings.TrimSpace(line))
	}
	if m == nil {
		t.Fatal("pdp serve --dev printed no pdp revoke command")
	}
	iss, server, tokenFile := m[1], m[2], m[3]
	if st, err := os.Stat(tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin credential file %s: %v, mode %v; want 0600", tokenFile, err, st.Mode())
	}
	t.Chdir(work) // pdp revoke finds data/dev-admin-token by itself
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"ok/the printed command", []string{"subject", "alice", "--iss", iss, "--server", server, "--admin-token-file", tokenFile}, ""},
		{"ok/the dev credential found in ./data", []string{"session", "s-1", "--iss", iss, "--server", server}, ""},
		{"ok/a day as the cut-off", []string{"subject", "bob", "--iss", iss, "--server", server, "--not-before", "2026-01-02"}, ""},
		{"fail/issuer not configured", []string{"subject", "alice", "--iss", iss + "x", "--server", server}, "is not configured"},
		{"ok/issuer not configured with --force", []string{"subject", "alice", "--iss", iss + "x", "--server", server, "--force"}, ""},
		{"fail/user event for an issuer not configured", []string{"user-event", "logout", "--iss", "https://typo.example", "--sub", "alice", "--server", server}, "is not configured"},
		{"fail/bad date says so", []string{"subject", "alice", "--iss", iss, "--server", server, "--not-before", "2026-13-01"}, `--not-before: "2026-13-01" is not a date`},
		{"fail/bad event date says so", []string{"user-event", "logout", "--iss", iss, "--sub", "alice", "--server", server, "--at", "yesterday"}, `--at: "yesterday" is not a date`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, append([]string{"revoke"}, tc.args...)...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("pdp revoke %v: %v, want %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil || !strings.Contains(out, `"id"`) {
				t.Fatalf("pdp revoke %v: %v\n%s", tc.args, err, out)
			}
		})
	}
	out, _, err := runCLI(t, "revoke", "list", "--server", server, "--iss", iss+"x")
	if err != nil || strings.Count(out, `"kind"`) != 1 {
		t.Errorf("the refused revocation was stored anyway, or the forced one not: %v\n%s", err, out)
	}
}
