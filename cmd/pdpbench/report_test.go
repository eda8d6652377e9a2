package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/cpuset"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func scenarioNamed(t *testing.T, name string) scenario {
	t.Helper()
	for _, sc := range scenarios {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return scenario{}
}

func TestRenderMarkdown(t *testing.T) {
	lat := func(p50, p99, p999 float64) percentiles {
		return percentiles{P50: time.Duration(p50 * float64(time.Millisecond)), P99: time.Duration(p99 * float64(time.Millisecond)), P999: time.Duration(p999 * float64(time.Millisecond))}
	}
	rows := []row{
		{Scenario: scenarioNamed(t, "warm"), Peer: "opa", Baseline: true, MaxRPS: 2000, Latency: lat(0.4, 1.2, 2.5), CPUPer1k: 0.35, PeakRSS: 80 << 20},
		{Scenario: scenarioNamed(t, "warm"), Peer: "tokenguard", MaxRPS: 6500, Latency: lat(0.3, 4.1, 8), CPUPer1k: 0.12, PeakRSS: 140 << 20},
		{Scenario: scenarioNamed(t, "cold"), Peer: "opa", Baseline: true, MaxRPS: 1800, Latency: lat(0.5, 1.5, 3), CPUPer1k: 0.4, PeakRSS: 85 << 20},
		{Scenario: scenarioNamed(t, "cold"), Peer: "tokenguard", MaxRPS: 1500, Latency: lat(0.9, 7, 12), CPUPer1k: 0.6, PeakRSS: 150 << 20, Note: "at half load (750/s): 2 errors (first: 500)"},
		{Scenario: scenarioNamed(t, "dpop"), Peer: "tokenguard", MaxRPS: 2100, Latency: lat(1, 6, 15), CPUPer1k: 0.9, PeakRSS: 160 << 20},
		{Scenario: scenarioNamed(t, "revoked"), Peer: "tokenguard", MaxRPS: 6000, Latency: lat(0.3, 4.5, 9), CPUPer1k: 0.13, PeakRSS: 400 << 20, Foreign: 0.12},
	}
	m := machine{CPU: "AMD EPYC 7B13", Cores: 2, GoVersion: "go1.26.8", OPAVersion: "1.22.3", Date: time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC), Pinning: pinning(cpuset.Set{0}, cpuset.Set{1})}
	got := renderMarkdown(m, rows, "steps of 3s")
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("renderMarkdown differs from %s:\n%s", golden, got)
	}
	for _, s := range []string{
		"| warm bearer | tokenguard | 6500 | 0.30 ms | 4.10 ms | 8.00 ms | 0.120 | 140 MiB | 3.25× |",
		"| DPoP | tokenguard | 2100 | 1.00 ms | 6.00 ms | 15.00 ms | 0.900 | 160 MiB | 1.05× (vs OPA warm bearer) |",
		"| cold bearer | tokenguard | 1500 ⚠ |",
		"warm bearer ≥ 3× stock OPA: 3.25× — met",
		"cold bearer ≥ 1.2× stock OPA: 0.83× — **not met**",
		"revoked-heavy within 10% of warm bearer: 92% of it — met",
		"up to 12% of the machine's CPU",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

func TestRatioWithoutBaseline(t *testing.T) {
	rows := []row{{Scenario: scenarioNamed(t, "dpop"), Peer: "tokenguard", MaxRPS: 100}}
	if got := ratio(rows, rows[0]); got != "n/a" {
		t.Errorf("ratio without an OPA row = %q, want n/a", got)
	}
	if got := targets(rows); len(got) != 0 {
		t.Errorf("targets without OPA rows = %v, want none", got)
	}
}

func TestSelectScenarios(t *testing.T) {
	got, err := selectScenarios("revoked, warm")
	if err != nil || len(got) != 2 || got[0].Name != "warm" || got[1].Name != "revoked" {
		t.Errorf("selectScenarios = %v, %v; want warm then revoked", got, err)
	}
	if all, _ := selectScenarios("all"); len(all) != len(scenarios) {
		t.Errorf("all = %d scenarios", len(all))
	}
	for _, bad := range []string{"warm,hot", ""} {
		if _, err := selectScenarios(bad); err == nil {
			t.Errorf("selectScenarios(%q): no error", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Run("ok/quick shortens what was not set", func(t *testing.T) {
		o, err := parseFlags([]string{"--quick", "--step", "2s"})
		if err != nil {
			t.Fatal(err)
		}
		if o.Step != 2*time.Second || o.Measure != time.Second || o.Revocations != 10_000 {
			t.Errorf("quick options = %+v", o)
		}
	})
	t.Run("ok/defaults measure for real and write to stdout only", func(t *testing.T) {
		o, err := parseFlags(nil)
		if err != nil || o.Revocations != 1_000_000 || o.Fingerprints != 1_000_000 || o.Out != "" || o.ServerCPUs != nil {
			t.Errorf("defaults = %+v, %v", o, err)
		}
	})
	t.Run("fail/a zero step", func(t *testing.T) {
		if _, err := parseFlags([]string{"--step", "0s"}); err == nil {
			t.Error("no error")
		}
	})
}

func TestSlug(t *testing.T) {
	for label, want := range map[string]string{
		"tokenguard":               "tokenguard",
		"opa (io.jwt cache)":       "opa-io-jwt-cache",
		"tokenguard (redis store)": "tokenguard-redis-store",
	} {
		if got := slug(label); got != want {
			t.Errorf("slug(%q) = %q, want %q", label, got, want)
		}
	}
}
