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
		{name: "fail/too short for a restart in the middle", args: []string{"10s"}, wantErr: "at least 30s"},
		{name: "fail/not a duration", args: []string{"soon"}, wantErr: "unexpected arguments"},
		{name: "fail/two durations", args: []string{"1m", "2m"}, wantErr: "unexpected arguments"},
		{name: "fail/no rate", args: []string{"--rate", "0"}, wantErr: "--rate"},
		{name: "fail/no workers", args: []string{"--workers", "0"}, wantErr: "--workers"},
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
		})
	}
}

func TestResultPassesOnlyWithoutErrorsWrongAnswersOrLostRevocations(t *testing.T) {
	clean := func() *result { return &result{counts: &counts{}} }
	for _, c := range []struct {
		name  string
		spoil func(r *result)
		want  bool
	}{
		{name: "ok/nothing went wrong", spoil: func(*result) {}, want: true},
		{name: "ok/failures inside the restart window only", spoil: func(r *result) { r.counts.restart = 100 }, want: true},
		{name: "fail/a 5xx outside the restart window", spoil: func(r *result) { r.counts.status5xx = 1 }},
		{name: "fail/a connection failure outside the restart window", spoil: func(r *result) { r.counts.netErrors = 1 }},
		{name: "fail/a revoked subject allowed", spoil: func(r *result) { r.counts.wrong[kindRevoked] = 1 }},
		{name: "fail/an acknowledged revocation not enforced", spoil: func(r *result) { r.lost = []string{"x"} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := clean()
			c.spoil(r)
			if got := r.passed(); got != c.want {
				t.Fatalf("passed = %v, want %v", got, c.want)
			}
			if report := r.markdown(options{Rate: 1, Workers: 1}); !strings.Contains(report, map[bool]string{true: "passed", false: "FAILED"}[c.want]) {
				t.Fatalf("report does not say so:\n%s", report)
			}
		})
	}
}
