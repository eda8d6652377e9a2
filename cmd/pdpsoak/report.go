package main

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is what a run saw.
type result struct {
	elapsed       time.Duration
	restartWindow time.Duration
	samples       []sample
	counts        *counts
	lost          []string
	checked       int
}

// passed: no 5xx or connection failure outside the restart window, no
// wrong answer, every acknowledged revocation enforced.
func (r *result) passed() bool {
	c := r.counts
	wrong := 0
	for _, w := range c.wrong {
		wrong += w
	}
	return c.status5xx == 0 && c.netErrors == 0 && wrong == 0 && len(r.lost) == 0
}

func (r *result) markdown(o options) string {
	c := r.counts
	var b strings.Builder
	verdict := "passed"
	if !r.passed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "## Soak: %s\n\n", verdict)
	fmt.Fprintf(&b, "%s of traffic at %.0f decisions/s (%d workers) against one pdp, %d CPUs (%s/%s), one kill -9 and restart in the middle.\n\n",
		r.elapsed.Round(time.Second), o.Rate, o.Workers, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	b.WriteString("| requests | sent | right answer | wrong answer |\n|---|---:|---:|---:|\n")
	total := 0
	for k := range kinds {
		total += c.sent[k]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", kindNames[k], c.sent[k], c.right[k], c.wrong[k])
	}
	fmt.Fprintf(&b, "\n| what | count |\n|---|---:|\n")
	fmt.Fprintf(&b, "| decisions sent | %d |\n", total)
	fmt.Fprintf(&b, "| 5xx outside the restart window | %d |\n", c.status5xx)
	fmt.Fprintf(&b, "| connection failures outside the restart window | %d |\n", c.netErrors)
	fmt.Fprintf(&b, "| 4xx problems | %d |\n", c.status4xx)
	fmt.Fprintf(&b, "| failed or refused inside the restart window (%s to ready, + %s) | %d |\n", r.restartWindow.Round(time.Millisecond), restartGrace, c.restart)
	fmt.Fprintf(&b, "| sends skipped, every worker busy | %d |\n", c.skipped)
	fmt.Fprintf(&b, "| revocations through the admin API: acknowledged / refused | %d / %d |\n", c.admin[0], c.admin[1])
	fmt.Fprintf(&b, "| Shared Signals events: acknowledged / refused | %d / %d |\n", c.sets[0], c.sets[1])
	fmt.Fprintf(&b, "| acknowledged revocations checked at the end / not enforced | %d / %d |\n", r.checked, len(r.lost))
	fmt.Fprintf(&b, "| policy data edits / distinct revisions seen active | %d / %d |\n", c.edits, len(c.revisions))
	if len(c.other5xx) > 0 {
		codes := []string{}
		for st, n := range c.other5xx {
			codes = append(codes, fmt.Sprintf("%d×%d", n, st))
		}
		for reason, n := range c.reasons5xx {
			codes = append(codes, fmt.Sprintf("%d×%s", n, reason))
		}
		slices.Sort(codes)
		fmt.Fprintf(&b, "\n5xx answers: %s\n", strings.Join(codes, ", "))
		var windows []string
		for _, w := range slices.Sorted(maps.Keys(c.windows5xx)) {
			windows = append(windows, fmt.Sprintf("%d–%d s: %d", w*10, w*10+10, c.windows5xx[w]))
		}
		fmt.Fprintf(&b, "\n5xx by 10-second window: %s\n", strings.Join(windows, ", "))
	}
	b.WriteString("\nThe start sample is taken after a 10 s warm-up (the caches filling, the heap growing to its GC target).\n")
	b.WriteString("\n| moment | RSS | Go heap in use | verified tokens (estimated heap) | kept decisions (estimated heap) | goroutines | open files | 5xx so far |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.samples {
		fmt.Fprintf(&b, "| %s | %.0f MiB | %.0f MiB | %d (%.1f MiB) | %d (%.1f MiB) | %d | %d | %d |\n",
			s.label, s.rssMiB, s.heapMiB, s.tokens, s.tokensMiB, s.kept, s.keptMiB, s.goroutines, s.fds, s.errors5xx)
	}
	if first, last, ok := r.startEnd(); ok {
		fmt.Fprintf(&b, "\nFrom start to end: RSS %+.0f%%, goroutines %+.0f%% (flat means within 10%%).\n",
			pct(first.rssMiB, last.rssMiB), pct(float64(first.goroutines), float64(last.goroutines)))
	}
	if len(c.wrongSeen) > 0 {
		b.WriteString("\nWrong answers (first ones):\n\n")
		for _, w := range c.wrongSeen {
			fmt.Fprintf(&b, "- `%s`\n", truncate(w, 900))
		}
	}
	if len(r.lost) > 0 {
		b.WriteString("\nAcknowledged revocations not enforced:\n\n")
		for i, l := range r.lost {
			if i == 10 {
				fmt.Fprintf(&b, "- … and %d more\n", len(r.lost)-10)
				break
			}
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	return b.String()
}

// startEnd are the first and last samples.
func (r *result) startEnd() (first, last sample, ok bool) {
	if len(r.samples) < 2 {
		return sample{}, sample{}, false
	}
	return r.samples[0], r.samples[len(r.samples)-1], true
}

func pct(from, to float64) float64 {
	if from == 0 {
		return 0
	}
	return (to - from) / from * 100
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
