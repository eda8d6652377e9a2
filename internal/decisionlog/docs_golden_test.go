package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under docs/examples/decisionlog/")

// decisionLogGolden is the custom member of a decision-log event that
// docs/operations.md quotes.
const decisionLogGolden = "../../docs/examples/decisionlog/custom-deny.json"

// TestDecisionLogCustomGolden: the custom member of the event of a deny
// (a verified token without the route's scope) is the one the docs show.
func TestDecisionLogCustomGolden(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	d := &decision.Decision{
		ID: decision.NewID(), Allow: false, Status: 403,
		Reasons:  []policy.Reason{{Code: "scope_insufficient", Message: "the token lacks the scope accounts:read"}},
		Warnings: []policy.Reason{},
		Headers:  map[string]string{"www-authenticate": `Bearer realm="tokenguard", error="insufficient_scope", scope="accounts:read"`},
		Token: &decision.TokenSummary{Issuer: "https://as.example.com", Subject: "alice", ClientID: "web-app",
			GrantType: "authorization_code", Scopes: []string{"profile"}},
		Policy:    decision.PolicyRef{Revision: "205272ce958148ee", Module: "grants.authorization_code"},
		TokenHash: "q1oVwT6mYpRk0x3cGx2bK7uJ0hS4nA9dZ8eF1gH2iJk", GrantType: "authorization_code", Input: input(t),
	}
	b.logger.Log(context.Background(), Entry{Decision: d, Latency: 412 * time.Microsecond})
	lines := b.consoleLines(t)
	if len(lines) != 1 {
		t.Fatalf("console decision lines = %d, want 1", len(lines))
	}
	got, err := json.MarshalIndent(map[string]any{"custom": lines[0]["custom"]}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(decisionLogGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(decisionLogGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(decisionLogGolden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the custom member differs from docs/examples/decisionlog/custom-deny.json:\n%s\nwant\n%s", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(decisionLogGolden))
	for _, e := range entries {
		if e.Name() != filepath.Base(decisionLogGolden) {
			t.Errorf("docs/examples/decisionlog/%s is no longer produced", e.Name())
		}
	}
}
