package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{name: "ok/defaults", want: 10 * time.Minute},
		{name: "ok/a bare duration, as the task passes it", args: []string{"3m"}, want: 3 * time.Minute},
		{name: "ok/flags", args: []string{"--duration", "90s", "--rate", "100"}, want: 90 * time.Second},
		{name: "ok/a bare duration, then flags", args: []string{"2m", "--rate", "100", "--keep"}, want: 2 * time.Minute},
		{name: "ok/flags, then a bare duration", args: []string{"--keep", "3m"}, want: 3 * time.Minute},
		{name: "fail/a duration, flags and another argument", args: []string{"2m", "--keep", "later"}, wantErr: "unexpected arguments"},
		{name: "fail/a bad flag after the duration", args: []string{"2m", "--no-such-flag"}, wantErr: "unexpected arguments"},
		{name: "fail/too short for a restart in the middle", args: []string{"10s"}, wantErr: "at least 30s"},
		{name: "fail/not a duration", args: []string{"soon"}, wantErr: "unexpected arguments"},
		{name: "fail/two durations", args: []string{"1m", "2m"}, wantErr: "unexpected arguments"},
		{name: "fail/no rate", args: []string{"--rate", "0"}, wantErr: "--rate"},
		{name: "fail/no workers", args: []string{"--workers", "0"}, wantErr: "--workers"},
		{name: "ok/pinned", args: []string{"--server-cpus", "0", "--generator-cpus", "1"}, want: 10 * time.Minute},
		{name: "fail/a server CPU list that is none", args: []string{"--server-cpus", "x"}, wantErr: "--server-cpus"},
		{name: "fail/a generator CPU list that is none", args: []string{"--generator-cpus", "1-0"}, wantErr: "--generator-cpus"},
		{name: "fail/fresh tokens too short-lived", args: []string{"--fresh-token-ttl", "5s"}, wantErr: "--fresh-token-ttl"},
		{name: "fail/fresh tokens outliving the warm ones", args: []string{"--fresh-token-ttl", "2h"}, wantErr: "--fresh-token-ttl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(c.args)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || o.Duration != c.want {
				t.Fatalf("duration = %v, err = %v; want %v", o.Duration, err, c.want)
			}
			if c.name == "ok/defaults" && o.Rate != defaultRate {
				t.Errorf("rate = %v, want the default %v", o.Rate, defaultRate)
			}
		})
	}
}

func TestResultPassesOnlyWithoutErrorsWrongAnswersOrLostRevocations(t *testing.T) {
	steady := func(up time.Duration, rss float64, goroutines, fds int) sample {
		return sample{label: "x", up: up, rssMiB: rss * 0.8, medianMiB: rss, peakMiB: rss * 1.2, settled: up >= 3*time.Minute, goroutines: goroutines, fds: fds}
	}
	clean := func() *result {
		return &result{counts: &counts{}, steadyAfter: 3 * time.Minute, samples: []sample{
			steady(10*time.Second, 100, 40, 38), // warming up: not compared
			steady(3*time.Minute, 400, 50, 45),
			steady(5*time.Minute, 420, 130, 125), // more connections, same other goroutines
			steady(10*time.Second, 120, 40, 38),  // the restarted pdp
			steady(3*time.Minute+30*time.Second, 410, 60, 55),
			steady(4*time.Minute, 415, 60, 55),
		}}
	}
	for _, c := range []struct {
		name  string
		spoil func(r *result)
		want  bool
	}{
		{name: "ok/nothing went wrong", spoil: func(*result) {}, want: true},
		{name: "ok/failures during the cold starts only", spoil: func(r *result) { r.counts.cold = 100 }, want: true},
		{name: "fail/a 5xx outside the cold starts", spoil: func(r *result) { r.counts.status5xx = 1 }},
		{name: "fail/a connection failure outside the cold starts", spoil: func(r *result) { r.counts.netErrors = 1 }},
		{name: "fail/a revoked subject allowed", spoil: func(r *result) { r.counts.wrong[kindRevoked] = 1 }},
		{name: "fail/an acknowledged revocation not enforced", spoil: func(r *result) { r.lost = []string{"x"} }},
		{name: "ok/too few steady samples to judge memory", spoil: func(r *result) { r.samples = r.samples[:2] }, want: true},
		{name: "ok/the restarted pdp settles at its own level", spoil: func(r *result) {
			r.samples[4].medianMiB, r.samples[5].medianMiB = 480, 490
		}, want: true},
		{name: "ok/one collection overshoots once steady", spoil: func(r *result) { r.samples[4].peakMiB = 600 }, want: true},
		{name: "ok/a window that lies mostly before the caches settled is not compared", spoil: func(r *result) {
			r.samples[1].medianMiB, r.samples[1].settled = 340, false
		}, want: true},
		{name: "fail/the same window once settled", spoil: func(r *result) { r.samples[1].medianMiB = 340 }},
		{name: "fail/RSS grows once steady", spoil: func(r *result) { r.samples = append(r.samples, steady(6*time.Minute, 470, 60, 55)) }},
		{name: "fail/RSS of the first pdp grows once steady", spoil: func(r *result) { r.samples[2].medianMiB = 450 }},
		{name: "fail/goroutines grow beside the connections once steady", spoil: func(r *result) { r.samples = append(r.samples, steady(6*time.Minute, 410, 90, 55)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := clean()
			c.spoil(r)
			if got := r.passed(); got != c.want {
				t.Fatalf("passed = %v, want %v", got, c.want)
			}
			if report := r.markdown(options{Rate: 1, Workers: 1, FreshTTL: 2 * time.Minute}); !strings.Contains(report, map[bool]string{true: "passed", false: "FAILED"}[c.want]) {
				t.Fatalf("report does not say so:\n%s", report)
			}
		})
	}
}

func TestPeakAndMedian(t *testing.T) {
	for _, c := range []struct {
		name         string
		readings     []float64
		peak, median float64
	}{
		{name: "none", readings: nil, peak: 0, median: 0},
		{name: "one", readings: []float64{300}, peak: 300, median: 300},
		{name: "odd count: the middle one", readings: []float64{360, 413, 355}, peak: 413, median: 360},
		{name: "even count: between the middle two", readings: []float64{350, 420, 360, 340}, peak: 420, median: 355},
	} {
		t.Run(c.name, func(t *testing.T) {
			peak, median := peakAndMedian(c.readings)
			if peak != c.peak || median != c.median {
				t.Fatalf("peakAndMedian(%v) = %v, %v; want %v, %v", c.readings, peak, median, c.peak, c.median)
			}
		})
	}
}

func TestWindowJudgesOnlyReadingsOnceSettled(t *testing.T) {
	at := func(s int, mib float64) reading { return reading{up: time.Duration(s) * time.Second, mib: mib} }
	const steadyAfter = 3 * time.Minute
	for _, c := range []struct {
		name         string
		readings     []reading
		peak, median float64
		settled      bool
	}{
		{name: "all before: not settled, all readings", readings: []reading{at(150, 340), at(165, 350), at(180, 365)},
			peak: 365, median: 350, settled: false},
		{name: "half after: not settled", readings: []reading{at(170, 340), at(175, 345), at(180, 400), at(185, 410)},
			peak: 410, median: 372.5, settled: false},
		{name: "most after: settled, the earlier ones left out", readings: []reading{at(179, 300), at(181, 400), at(190, 410)},
			peak: 410, median: 405, settled: true},
		{name: "all after: settled", readings: []reading{at(200, 400), at(210, 420), at(220, 380)},
			peak: 420, median: 400, settled: true},
		{name: "none", readings: nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			peak, median, settled := window(c.readings, steadyAfter)
			if peak != c.peak || median != c.median || settled != c.settled {
				t.Fatalf("window = %v, %v, %v; want %v, %v, %v", peak, median, settled, c.peak, c.median, c.settled)
			}
		})
	}
}

func TestTypicalCountSkipsCountsReadWhileConnectionsCameAndWent(t *testing.T) {
	cases := []struct {
		name   string
		counts []goroutineCount
		want   goroutineCount
	}{
		{
			name:   "every count steady: the median of the other goroutines",
			counts: []goroutineCount{{100, 108, 100}, {100, 104, 100}, {102, 108, 102}},
			want:   goroutineCount{102, 108, 102},
		},
		{
			name: "connections closed while read: those counts left out",
			// 20 connections closed between the files and the goroutines
			// were read: -16 other goroutines, which is no count at all.
			counts: []goroutineCount{{120, 104, 100}, {100, 106, 100}, {120, 110, 105}, {98, 103, 98}, {100, 107, 100}},
			want:   goroutineCount{100, 106, 100},
		},
		{
			name:   "none steady: the median of all",
			counts: []goroutineCount{{120, 104, 100}, {90, 110, 100}, {100, 107, 103}},
			want:   goroutineCount{100, 107, 103},
		},
		{
			name:   "a leak shows in every count",
			counts: []goroutineCount{{100, 160, 100}, {100, 158, 100}, {90, 150, 100}},
			want:   goroutineCount{100, 158, 100},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := typicalCount(tc.counts); got != tc.want {
				t.Errorf("typicalCount = %+v, want %+v", got, tc.want)
			}
		})
	}
}
