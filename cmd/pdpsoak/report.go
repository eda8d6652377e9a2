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
	// steadyAfter is how long a pdp runs before its caches are as full as
	// the traffic makes them (the fresh tokens' lifetime and a sweep):
	// memory is compared from then on.
	steadyAfter time.Duration
}

// flatWithin is how far apart the steady samples of one pdp may be.
const flatWithin = 0.10

// steady are the samples whose window (the readings since the sample
// before) lies mostly after the pdp serving then had run for steadyAfter,
// one list per pdp process (the first and the restarted
// one): a leak shows as growth within a process, and the restarted
// process's caches settle at their own level (it has seen another part of
// the traffic, which changes over the run: the revoked subjects grow).
func (r *result) steady() [][]sample {
	var lives [][]sample
	var life []sample
	var last time.Duration
	for _, s := range r.samples {
		if s.up < last {
			lives, life = appendLife(lives, life), nil
		}
		last = s.up
		if s.settled {
			life = append(life, s)
		}
	}
	return appendLife(lives, life)
}

func appendLife(lives [][]sample, life []sample) [][]sample {
	if len(life) == 0 {
		return lives
	}
	return append(lives, life)
}

// spread is how far apart samples are: their median RSS (of the readings
// taken every second since the sample before: a single reading falls
// anywhere between the garbage collector's low and high points, which GOGC
// puts far apart, and the highest is one collection's overshoot, which a
// sample may or may not hold; a process that grows raises the median of
// every window after) as (max − min) / min, and the lowest and highest
// count of their goroutines beside the connections' (one per open
// connection, as many as the load generator keeps). ok is false with fewer
// than two samples.
func spread(st []sample) (rss float64, goroutinesLo, goroutinesHi int, ok bool) {
	if len(st) < 2 {
		return 0, 0, 0, false
	}
	lo, hi := st[0].medianMiB, st[0].medianMiB
	goroutinesLo, goroutinesHi = st[0].otherGoroutines(), st[0].otherGoroutines()
	for _, s := range st[1:] {
		lo, hi = min(lo, s.medianMiB), max(hi, s.medianMiB)
		goroutinesLo, goroutinesHi = min(goroutinesLo, s.otherGoroutines()), max(goroutinesHi, s.otherGoroutines())
	}
	if lo > 0 {
		rss = (hi - lo) / lo
	}
	return rss, goroutinesLo, goroutinesHi, true
}

// goroutineSlack is how many goroutines the steady samples may differ by
// whatever flatWithin allows: a few come and go with the background work
// (a batch being written, a sweep, a policy reload).
const goroutineSlack = 10

// otherGoroutines are the goroutines beside one per open file (each open
// connection holds a file and the goroutine that serves it).
func (s sample) otherGoroutines() int { return s.goroutines - s.fds }

// flatLife: samples' median RSS and other goroutines stay within flatWithin
// of each other (true when there are too few to tell).
func flatLife(st []sample) bool {
	rss, lo, hi, ok := spread(st)
	return !ok || (rss <= flatWithin && float64(hi-lo) <= max(flatWithin*float64(lo), goroutineSlack))
}

// flat: each pdp's steady samples are flat.
func (r *result) flat() bool {
	for _, life := range r.steady() {
		if !flatLife(life) {
			return false
		}
	}
	return true
}

// judged: some pdp has two steady samples or more to compare.
func (r *result) judged() bool {
	for _, life := range r.steady() {
		if len(life) >= 2 {
			return true
		}
	}
	return false
}

// passed: no 5xx or connection failure outside the cold starts, no
// wrong answer, every acknowledged revocation enforced, memory flat.
func (r *result) passed() bool {
	c := r.counts
	wrong := 0
	for _, w := range c.wrong {
		wrong += w
	}
	return c.status5xx == 0 && c.netErrors == 0 && wrong == 0 && len(r.lost) == 0 && r.flat()
}

func (r *result) markdown(o options) string {
	c := r.counts
	var b strings.Builder
	verdict := "passed"
	if !r.passed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "## Soak: %s\n\n", verdict)
	fmt.Fprintf(&b, "%s of traffic at %.0f decisions/s (%d workers) against one pdp, %d CPUs (%s/%s; %s), one kill -9 and restart in the middle.\n\n",
		r.elapsed.Round(time.Second), o.Rate, o.Workers, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, pinning(o))
	b.WriteString("| requests | sent | right answer | wrong answer | 5xx outside the cold starts |\n|---|---:|---:|---:|---:|\n")
	total := 0
	for k := range kinds {
		total += c.sent[k]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", kindNames[k], c.sent[k], c.right[k], c.wrong[k], c.kind5xx[k])
	}
	fmt.Fprintf(&b, "\n| what | count |\n|---|---:|\n")
	fmt.Fprintf(&b, "| decisions sent | %d |\n", total)
	fmt.Fprintf(&b, "| 5xx outside the cold starts | %d |\n", c.status5xx)
	fmt.Fprintf(&b, "| connection failures outside the cold starts | %d |\n", c.netErrors)
	fmt.Fprintf(&b, "| 4xx problems | %d |\n", c.status4xx)
	fmt.Fprintf(&b, "| failed or refused during the cold starts (the first %s; from the kill to %s after ready, %s) | %d |\n", coldStart, coldStart, r.restartWindow.Round(time.Millisecond), c.cold)
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
	fmt.Fprintf(&b, "\nThe start sample is taken after a 10 s warm-up. Fresh tokens live %s, so a pdp's caches are as full as this traffic makes them after %s (the tokens' lifetime and a sweep of the expired ones): the samples of one pdp process whose window (the readings taken every second since the sample before) lies mostly after that (*steady*; their peak and median are of those later readings only) must be flat: the median RSS (so that one garbage collection's overshoot, shown as the peak, does not decide) within %.0f%% of each other, and the goroutines beside one per open file (a connection holds a file and the goroutine serving it; how many connections the load generator keeps open varies; each sample's count is the median of five, read between two counts of the open files that agree) likewise or within 10.\n",
		o.FreshTTL, r.steadyAfter, flatWithin*100)
	b.WriteString("\n| moment | up | RSS | median RSS | peak RSS | mapped files in RSS | Go heap in use | verified tokens (estimated heap) | kept decisions (estimated heap) | goroutines | open files | other goroutines | 5xx so far |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.samples {
		steady := ""
		if s.settled {
			steady = " (steady)"
		}
		fmt.Fprintf(&b, "| %s%s | %s | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %d (%.1f MiB) | %d (%.1f MiB) | %d | %d | %d | %d |\n",
			s.label, steady, s.up.Round(time.Second), s.rssMiB, s.medianMiB, s.peakMiB, s.fileMiB, s.heapMiB, s.tokens, s.tokensMiB, s.kept, s.keptMiB, s.goroutines, s.fds, s.otherGoroutines(), s.errors5xx)
	}
	if first, last, ok := r.startEnd(); ok {
		fmt.Fprintf(&b, "\nFrom start to end: RSS %+.0f%%, goroutines %+.0f%%.\n",
			pct(first.rssMiB, last.rssMiB), pct(float64(first.goroutines), float64(last.goroutines)))
	}
	if r.judged() {
		names := []string{"first pdp", "restarted pdp"}
		var all []sample
		for i, life := range r.steady() {
			all = append(all, life...)
			name := fmt.Sprintf("pdp %d", i+1)
			if i < len(names) {
				name = names[i]
			}
			rss, lo, hi, ok := spread(life)
			if !ok {
				fmt.Fprintf(&b, "\nSteady samples of the %s (%d): too few to compare.\n", name, len(life))
				continue
			}
			verdict := "flat"
			if !flatLife(life) {
				verdict = "NOT flat"
			}
			fmt.Fprintf(&b, "\nSteady samples of the %s (%d): median RSS spread %.0f%%, other goroutines %d–%d: %s (median RSS within %.0f%%, goroutines within %.0f%% or %d).\n",
				name, len(life), rss*100, lo, hi, verdict, flatWithin*100, flatWithin*100, goroutineSlack)
		}
		if rss, _, _, ok := spread(all); ok {
			fmt.Fprintf(&b, "\nAll steady samples, both processes (%d): median RSS spread %.0f%% (not judged: each process settles at its own level).\n", len(all), rss*100)
		}
	} else {
		b.WriteString("\nToo few steady samples to judge memory: run longer, or with a shorter --fresh-token-ttl.\n")
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

// pinning says where the pdp and the load generator ran.
func pinning(o options) string {
	if len(o.ServerCPUs) == 0 && len(o.GeneratorCPUs) == 0 {
		return "the load generator on the same CPUs"
	}
	return "the pdp on " + o.ServerCPUs.Where() + ", the load generator on " + o.GeneratorCPUs.Where()
}
