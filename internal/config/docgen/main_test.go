package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// TestConfigurationPageIsCurrent fails when docs/configuration.md is not
// what the config struct's comments and defaults generate.
func TestConfigurationPageIsCurrent(t *testing.T) {
	want, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../" + Page)
	if err != nil {
		t.Fatalf("%v: generate it with `go tool task docs`", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: regenerate it with `go tool task docs` (go run ./internal/config/docgen) and commit it; first difference at line %d", Page, firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestEveryKeyIsDocumented checks the page lists every key the config
// struct has, with its default, and no Go field names leak in.
func TestEveryKeyIsDocumented(t *testing.T) {
	page, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `listen` | string | `127.0.0.1:8181` | `PDP_LISTEN` |",
		"| `store.revocation_ttl` | duration | `720h` | `PDP_STORE_REVOCATION_TTL` |",
		"| `store.commit_wait` | duration | `500µs` |",
		"| `issuers[].algorithms` | list of strings | `[ES256, RS256, PS256, EdDSA]` |  |",
		"| `issuers[].introspection.cache_ttl` | duration | `1m` |",
		"| `policy.verification.key_id` | string | `default` |",
		"| `ssf.transmitters[].poll_interval` | duration | `30s` |",
		"| `ops.auth.token_file` | string | `\"\"` | `PDP_OPS_AUTH_TOKEN_FILE` |",
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if bytes.Contains(page, []byte("store.reset")) {
		t.Error("store.reset is flag-only (mapstructure:\"-\") and must not be listed")
	}
}

func TestAFieldWithoutACommentFailsTheGeneration(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../config.go")
	if err != nil {
		t.Fatal(err)
	}
	stripped := strings.Replace(string(src), "\t// Listen is the address of the HTTP decision API.\n", "", 1)
	if stripped == string(src) {
		t.Fatal("the Listen comment was not found")
	}
	if err := os.WriteFile(dir+"/config.go", []byte(stripped), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Generate(dir)
	if err == nil || !strings.Contains(err.Error(), "config.Config.Listen (listen) has no comment") {
		t.Errorf("err = %v, want one naming config.Config.Listen", err)
	}
}

func TestFormatDuration(t *testing.T) {
	for in, want := range map[string]string{"5m0s": "5m", "720h0m0s": "720h", "1h30m0s": "1h30m", "500µs": "500µs", "0s": "0s", "1m30s": "1m30s"} {
		d, err := time.ParseDuration(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %s, want %s", in, got, want)
		}
	}
}
