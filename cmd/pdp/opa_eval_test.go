package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/store"
)

// opaEval runs `pdp opa eval` from the repository root, as the docs show
// it, and returns the decision, stdout and stderr.
func opaEval(t *testing.T, extra ...string) (decision map[string]any, stdout, stderr string, err error) {
	t.Helper()
	args := append([]string{"opa", "eval", "-d", "rego/", "-i", "examples/input.json"}, extra...)
	args = append(args, "data.tokenguard.main.decision")
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var res struct {
		Result []struct {
			Expressions []struct {
				Value map[string]any `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if json.Unmarshal(out.Bytes(), &res) == nil && len(res.Result) == 1 && len(res.Result[0].Expressions) == 1 {
		decision = res.Result[0].Expressions[0].Value
	}
	return decision, out.String(), errOut.String(), err
}

// TestOPAEvalOfTheExampleInput: the docs' `pdp opa eval` of
// examples/input.json is an allow (the pdp.* built-ins read an empty store
// outside serve); with --data-dir they read that store, read-only, so a
// revocation stored there denies, the file is left as it was, and a store
// a server holds is refused with a clear error.
func TestOPAEvalOfTheExampleInput(t *testing.T) {
	t.Run("ok/allow with the empty store", func(t *testing.T) {
		d, out, errOut, err := opaEval(t)
		if err != nil || d["allow"] != true {
			t.Fatalf("pdp opa eval: %v, allow=%v\n%s\n%s", err, d["allow"], out, errOut)
		}
	})

	var input struct {
		Token struct {
			Issuer string `json:"issuer"`
			Claims struct {
				Sub string `json:"sub"`
			} `json:"claims"`
		} `json:"token"`
	}
	b, err := os.ReadFile("../../examples/input.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &input); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.OpenBolt(dir, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.PutRevocation(context.Background(), store.Revocation{Kind: store.KindSubject, Issuer: input.Token.Issuer,
		Value: input.Token.Claims.Sub, CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	t.Run("fail/a server holds the store", func(t *testing.T) {
		_, out, errOut, err := opaEval(t, "--data-dir", dir)
		if err == nil || !strings.Contains(errOut, "data dir") {
			t.Fatalf("pdp opa eval --data-dir on a held store: %v\n%s\n%s", err, out, errOut)
		}
	})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, store.FileName)
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("fail/a revocation in --data-dir denies", func(t *testing.T) {
		d, out, errOut, err := opaEval(t, "--data-dir", dir)
		if err != nil || d["allow"] != false || !strings.Contains(out, "subject_revoked") {
			t.Fatalf("pdp opa eval --data-dir: %v, allow=%v\n%s\n%s", err, d["allow"], out, errOut)
		}
	})
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("pdp opa eval --data-dir changed the store file")
	}
	t.Run("fail/a data dir without a store", func(t *testing.T) {
		empty := t.TempDir()
		if _, _, errOut, err := opaEval(t, "--data-dir", empty); err == nil || !strings.Contains(errOut, "no store file") {
			t.Fatalf("pdp opa eval --data-dir on an empty dir: %v %s", err, errOut)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("pdp opa eval --data-dir wrote into an empty dir: %v", entries)
		}
	})
}
