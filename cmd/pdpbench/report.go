package main

import (
	"fmt"
	"strings"
	"time"
)

// row is the outcome of one scenario for one peer.
type row struct {
	Scenario scenario
	Peer     string
	// Baseline marks stock OPA, the peer others are compared with.
	Baseline bool
	// MaxRPS is the highest sustained rate; 0 when none was.
	MaxRPS float64
	// Latency was measured at half of MaxRPS.
	Latency percentiles
	// CPUPer1k is the server's CPU seconds per 1,000 decisions at half load.
	CPUPer1k float64
	// PeakRSS is the server's peak resident set size, bytes.
	PeakRSS uint64
	// Foreign is the largest share of the machine's CPU that other
	// processes took during a step of this row (0..1).
	Foreign float64
	// Note flags a measurement that was not clean (errors at half load).
	Note string
}

// foreignWarn is the share of the machine's CPU used by other processes
// above which the report warns that the numbers are skewed.
const foreignWarn = 0.05

// machine describes where the benchmark ran.
type machine struct {
	CPU        string
	Cores      int
	GoVersion  string
	OPAVersion string
	Date       time.Time
	// Pinning says which CPUs the servers and the load generator ran on.
	Pinning string
}

func (m machine) String() string {
	pin := m.Pinning
	if pin == "" {
		pin = "not pinned"
	}
	return fmt.Sprintf("%s, %d cores, %s, OPA %s, %s (load generator on the same machine; %s)",
		m.CPU, m.Cores, m.GoVersion, m.OPAVersion, m.Date.UTC().Format("2006-01-02 15:04 MST"), pin)
}

// baselineFor returns the stock-OPA row a row of scenario sc is compared
// with: the same scenario, or sc.CompareWith when OPA does not run sc.
func baselineFor(rows []row, sc scenario) (row, bool) {
	want := sc.Name
	if sc.CompareWith != "" {
		want = sc.CompareWith
	}
	for _, r := range rows {
		if r.Baseline && r.Scenario.Name == want {
			return r, true
		}
	}
	return row{}, false
}

// ratio renders MaxRPS of r against its OPA baseline, "" for the
// baseline itself and "n/a" without one.
func ratio(rows []row, r row) string {
	if r.Baseline {
		return "1.00× (baseline)"
	}
	b, ok := baselineFor(rows, r.Scenario)
	if !ok || b.MaxRPS == 0 {
		return "n/a"
	}
	s := fmt.Sprintf("%.2f×", r.MaxRPS/b.MaxRPS)
	if b.Scenario.Name != r.Scenario.Name {
		s += " (vs OPA " + b.Scenario.Title + ")"
	}
	return s
}

// renderMarkdown renders the results table, the machine line and the
// targets of the benchmark.
func renderMarkdown(m machine, rows []row, settings string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", m)
	if settings != "" {
		fmt.Fprintf(&b, "Settings: %s.\n\n", settings)
	}
	b.WriteString("| scenario | peer | max rps | p50 @50% | p99 @50% | p99.9 @50% | CPU s/1k | peak RSS | ratio vs OPA |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		max := fmt.Sprintf("%.0f", r.MaxRPS)
		if r.Note != "" {
			max += " ⚠"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.3f | %s | %s |\n",
			r.Scenario.Title, r.Peer, max, ms(r.Latency.P50), ms(r.Latency.P99), ms(r.Latency.P999),
			r.CPUPer1k, mib(r.PeakRSS), ratio(rows, r))
	}
	var notes []string
	for _, r := range rows {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("⚠ %s, %s: %s.", r.Scenario.Title, r.Peer, r.Note))
		}
	}
	busiest := 0.0
	for _, r := range rows {
		busiest = max(busiest, r.Foreign)
	}
	if busiest >= foreignWarn {
		notes = append(notes, fmt.Sprintf("⚠ Other processes used up to %.0f%% of the machine's CPU during a step: the machine was not quiet, the numbers are skewed.", 100*busiest))
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n\n") + "\n")
	}
	if t := targets(rows); len(t) > 0 {
		b.WriteString("\nTargets (issue #7):\n\n")
		for _, line := range t {
			b.WriteString("- " + line + "\n")
		}
	}
	return b.String()
}

// targets checks the rows of the peer named "tokenguard" against the goals
// of the benchmark: warm bearer ≥ 3× OPA with p99 ≤ 5 ms at half load,
// cold bearer ≥ 1.2× OPA, DPoP ≥ 1× OPA warm bearer, revoked-heavy within
// 10% of warm bearer. Goals whose rows are missing are left out.
func targets(rows []row) []string {
	find := func(peer, scenario string, baseline bool) (row, bool) {
		for _, r := range rows {
			if r.Baseline == baseline && (baseline || r.Peer == peer) && r.Scenario.Name == scenario {
				return r, true
			}
		}
		return row{}, false
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	var out []string
	tgWarm, okTW := find("tokenguard", "warm", false)
	opaWarm, okOW := find("", "warm", true)
	if okTW && okOW && opaWarm.MaxRPS > 0 {
		x := tgWarm.MaxRPS / opaWarm.MaxRPS
		out = append(out, fmt.Sprintf("warm bearer ≥ 3× stock OPA: %.2f× — %s", x, mark(x >= 3)))
	}
	if okTW && tgWarm.MaxRPS > 0 {
		out = append(out, fmt.Sprintf("warm bearer p99 ≤ 5 ms at half load: %s — %s", ms(tgWarm.Latency.P99), mark(tgWarm.Latency.P99 <= 5*time.Millisecond)))
	}
	if tg, ok := find("tokenguard", "cold", false); ok {
		if opa, ok := find("", "cold", true); ok && opa.MaxRPS > 0 {
			x := tg.MaxRPS / opa.MaxRPS
			out = append(out, fmt.Sprintf("cold bearer ≥ 1.2× stock OPA: %.2f× — %s", x, mark(x >= 1.2)))
		}
	}
	if tg, ok := find("tokenguard", "dpop", false); ok && okOW && opaWarm.MaxRPS > 0 {
		x := tg.MaxRPS / opaWarm.MaxRPS
		out = append(out, fmt.Sprintf("DPoP ≥ 1× stock OPA warm bearer: %.2f× — %s", x, mark(x >= 1)))
	}
	if tg, ok := find("tokenguard", "revoked", false); ok && okTW && tgWarm.MaxRPS > 0 {
		x := tg.MaxRPS / tgWarm.MaxRPS
		out = append(out, fmt.Sprintf("revoked-heavy within 10%% of warm bearer: %.0f%% of it — %s", 100*x, mark(x >= 0.9)))
	}
	return out
}

// ms renders a latency in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// mib renders a size in MiB.
func mib(n uint64) string {
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
