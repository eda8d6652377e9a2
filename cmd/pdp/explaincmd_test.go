package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"

	"github.com/tokenguard/pdp/internal/store"
)

// overLongInput is examples/input.json with a token that lives two hours.
func overLongInput(t *testing.T) string {
	t.Helper()
	var in map[string]any
	if err := json.Unmarshal([]byte(mustRead(t, "../../examples/input.json")), &in); err != nil {
		t.Fatal(err)
	}
	claims := in["token"].(map[string]any)["claims"].(map[string]any)
	claims["exp"] = claims["iat"].(float64) + 7200
	b, _ := json.Marshal(in)
	return string(b)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitCode(err error) int {
	var exit *opacmd.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Exit
	}
	return 1
}

func TestExplainCommand(t *testing.T) {
	policyDir, _ := filepath.Abs("../../rego")
	long := writeFile(t, overLongInput(t))
	logLine := writeFile(t, `{"decision_id": "d1", "input": `+overLongInput(t)+`, "result": {"allow": false}}`)

	// A stopped server's data dir in which alice's tokens are revoked.
	dataDir := t.TempDir()
	st, err := store.OpenBolt(dataDir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.PutRevocation(t.Context(), store.Revocation{Kind: store.KindSubject, Issuer: "http://127.0.0.1:8181/dev", Value: "alice",
		Reason: "logout", CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sum := func() [32]byte {
		b, err := os.ReadFile(filepath.Join(dataDir, store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	before := sum()

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "ok/an allowed request, every guardrail a pass", args: []string{"--input", "../../examples/input.json", "--policy", policyDir}, code: 0,
			stdout: []string{"decision: allow 200", "pass  lifetime", "lib/lifetime.rego:", "max_lifetime_s = 3600"}},
		{name: "fail/an over-long token names the lifetime and the limit", args: []string{"--input", long, "--policy", policyDir}, code: 0,
			stdout: []string{"decision: deny 401", "reason  lifetime_exceeded", "deny  lifetime     lifetime_exceeded", "lifetime_s = 7200", "max_lifetime_s = 3600"}},
		{name: "fail/json output", args: []string{"--input", long, "--policy", policyDir, "--format", "json"}, code: 0,
			stdout: []string{`"allow": false`, `"guardrail": "lifetime"`, `"code": "lifetime_exceeded"`, `"lifetime_s": 7200`, `"outcome": "deny"`}},
		{name: "fail/a decision-log line is explained from its input", args: []string{"--input", logLine, "--policy", policyDir}, code: 0,
			stdout: []string{"reason  lifetime_exceeded"}},
		{name: "fail/the data dir's revocation is read, read-only", args: []string{"--input", "../../examples/input.json", "--policy", policyDir, "--data-dir", dataDir}, code: 0,
			stdout: []string{"decision: deny 401", "deny  revocation", "revoked = true", `kind = "subject"`}},
		{name: "fail/no input", args: []string{"--policy", policyDir}, code: 2, stderr: []string{"--input FILE is required"}},
		{name: "fail/an input that does not exist", args: []string{"--input", "nope.json"}, code: 2, stderr: []string{"no such file"}},
		{name: "fail/an input that is not JSON", args: []string{"--input", writeFile(t, "{input")}, code: 2, stderr: []string{"--input"}},
		{name: "fail/an input that is not an object", args: []string{"--input", writeFile(t, "[1]")}, code: 2, stderr: []string{"not a JSON object"}},
		{name: "fail/an input over the size limit", args: []string{"--input", writeFile(t, `{"x":"`+strings.Repeat("a", maxExplainInput)+`"}`)}, code: 2,
			stderr: []string{"larger than"}},
		{name: "fail/a policy that does not exist", args: []string{"--input", long, "--policy", "nope"}, code: 2, stderr: []string{"--policy nope"}},
		{name: "fail/an unknown format", args: []string{"--input", long, "--format", "yaml"}, code: 2},
		{name: "fail/an argument", args: []string{"x", "--input", long}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append([]string{"explain"}, tt.args...)...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", got, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
	if sum() != before {
		t.Error("pdp explain --data-dir changed the store's file")
	}
}

func FuzzReadExplainInput(f *testing.F) {
	f.Add([]byte(`{"token": {"present": false}}`))
	f.Add([]byte(`{"decision_id": "d", "input": {"now": 1}}`))
	f.Add([]byte(`{"decision_id": "d", "input": 3}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := readExplainInput(bytes.NewReader(data))
		if err == nil && obj == nil {
			t.Fatal("no error and no input")
		}
		if err == nil {
			_ = nowOf(obj)
		}
	})
}
