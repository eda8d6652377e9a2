package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	opaversion "github.com/open-policy-agent/opa/v1/version"
	"github.com/spf13/cobra"
)

// runCLI runs pdp in-process with args and returns what it wrote.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, _, err := runCLI(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []*regexp.Regexp{
				regexp.MustCompile(`(?m)^tokenguard \S+$`),
				regexp.MustCompile(`(?m)^revision: +\S+$`),
				regexp.MustCompile(`(?m)^committed: +\S+$`),
				regexp.MustCompile(`(?m)^go: +go1\.\d+`),
				regexp.MustCompile(`(?m)^opa: +` + regexp.QuoteMeta(opaversion.Version) + `$`),
			} {
				if !want.MatchString(out) {
					t.Errorf("output does not match %s:\n%s", want, out)
				}
			}
		})
	}
	t.Run("ldflags version wins", func(t *testing.T) {
		defer func(v string) { version = v }(version)
		version = "v9.8.7"
		if got := readBuildInfo().Version; got != "v9.8.7" {
			t.Errorf("version = %q, want the one set at link time", got)
		}
	})
}

// TestHelpTexts walks every command, OPA's included, and reads its help as
// a user would: no text left over from renaming OPA ("an pdp opa bundle",
// "pdp opa opa") and boolean flags shown plainly.
func TestHelpTexts(t *testing.T) {
	bad := []*regexp.Regexp{
		regexp.MustCompile(`\ban pdp\b`),
		regexp.MustCompile(`pdp opa opa\b`),
		regexp.MustCompile(`pdp opa pdp`),
		regexp.MustCompile(`\[=true\|false\]`),
		regexp.MustCompile(`(?m)^\s*\$ opa `),
		regexp.MustCompile(`of pdp opa\b`),
	}
	root := newRootCommand()
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		n++
		text := strings.Join([]string{c.Short, c.Long, c.Example, c.UsageString()}, "\n")
		for _, re := range bad {
			if loc := re.FindStringIndex(text); loc != nil {
				from, to := max(loc[0]-40, 0), min(loc[1]+40, len(text))
				t.Errorf("%s: help says %q (…%s…)", c.CommandPath(), text[loc[0]:loc[1]], text[from:to])
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 25 {
		t.Errorf("walked %d commands; OPA's are missing", n)
	}
	out, _, err := runCLI(t, "opa", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Build an OPA bundle") {
		t.Errorf("pdp opa --help:\n%s", out)
	}
	out, _, err = runCLI(t, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+--dev\s+run on`).MatchString(out) {
		t.Errorf("pdp serve --help does not list --dev plainly:\n%s", out)
	}
}

func TestServeWithoutIssuerSuggestsDevMode(t *testing.T) {
	t.Chdir(t.TempDir())
	_, _, err := runCLI(t, "serve")
	if err == nil || !strings.Contains(err.Error(), "issuers: at least one issuer is required") || !strings.Contains(err.Error(), "pdp serve --dev") {
		t.Fatalf("pdp serve without issuers: %v, want the problem and pdp serve --dev", err)
	}
}

func TestConfigPrintWithoutConfigPrintsTheDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	out, stderr, err := runCLI(t, "config", "print")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listen: 127.0.0.1:8181", "decision_timeout: 100ms", "dir: ./rego"} {
		if !strings.Contains(out, want) {
			t.Errorf("pdp config print does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "issuers: at least one issuer is required") {
		t.Errorf("stderr does not say what pdp serve would refuse: %q", stderr)
	}
}

func TestConfigValidateNamesMissingFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := dir + "/pdp.yaml"
	if err := os.WriteFile(cfg, []byte("policy:\n  dir: rego\nissuers:\n  - issuer: https://as.example\n    jwks_file: keys.json\n    audiences: [https://api.example]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "config", "validate", "--config", cfg)
	for _, want := range []string{cfg + ":2: policy.dir: rego does not exist", cfg + ":5: issuers[0].jwks_file: keys.json does not exist"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pdp config validate: %v, want %q", err, want)
		}
	}
	if err := os.Mkdir("rego", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("keys.json", []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLI(t, "config", "validate", "--config", cfg); err != nil || !strings.Contains(out, "configuration is valid") {
		t.Errorf("pdp config validate with the files there: %v %s", err, out)
	}
}
