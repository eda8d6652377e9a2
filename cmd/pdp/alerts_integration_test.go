//go:build integration

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestAlertRulesIntegration runs Prometheus' own promtool over the shipped
// rules and dashboard: check rules parses every alert expression and
// annotation template; test rules runs testdata/prometheus/alerts_test.yaml,
// where each alert fires on the series that mean trouble and stays quiet
// on a blip; and every dashboard query, with its variables filled in, must
// parse as a PromQL expression. CI installs promtool (package prometheus).
func TestAlertRulesIntegration(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		promtool = "/usr/bin/promtool"
		if _, err := os.Stat(promtool); err != nil {
			t.Fatalf("promtool is not installed (apt-get install -y prometheus): %v", err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", alertsFile)

	// promtool compares annotations exactly; the unit tests are about
	// when an alert fires, so they run against the rules without them.
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	groups, _ := rules["groups"].([]any)
	for _, g := range groups {
		rs, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rs {
			delete(r.(map[string]any), "annotations")
		}
	}
	dir := t.TempDir()
	stripped, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("../../testdata/prometheus/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range alertNames(t, raw) {
		if !strings.Contains(string(unit), "alertname: "+name+"\n") {
			t.Errorf("alerts_test.yaml does not test %s", name)
		}
	}
	for name, data := range map[string][]byte{"alerts.yaml": stripped, "alerts_test.yaml": unit} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run("test", "rules", filepath.Join(dir, "alerts_test.yaml"))

	// The dashboard's queries as recording rules, the variables filled in
	// as Grafana fills them.
	raw, err = os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("$__rate_interval", "5m", "$job", ".+", "$instance", ".+")
	var recording []map[string]string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			recording = append(recording, map[string]string{"record": "dashboard:query", "expr": fill.Replace(tg.Expr)})
		}
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recording}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", filepath.Join(dir, "dashboard.yaml"))
}

func alertNames(t *testing.T, raw []byte) []string {
	t.Helper()
	var rules promRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}
