package main

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// capacity is a fake server that sustains any rate up to its capacity;
// it records the rates tried.
type capacity struct {
	max   float64
	tried []float64
}

func (c *capacity) probe(_ context.Context, rate float64) (bool, error) {
	c.tried = append(c.tried, rate)
	return rate <= c.max, nil
}

func TestSearchMax(t *testing.T) {
	plan := searchPlan{Start: 500, Min: 10, Max: 100_000, Precision: 0.1, MaxSteps: 12}
	tests := []struct {
		name      string
		capacity  float64
		plan      searchPlan
		want      float64
		wantTried []float64
	}{
		{
			name: "ok/doubles until a step fails, then bisects to within 10%", capacity: 3000, plan: plan,
			want: 3000, wantTried: []float64{500, 1000, 2000, 4000, 3000, 3500, 3250},
		},
		{
			name: "ok/halves when the first step fails", capacity: 180, plan: plan,
			want: 173, wantTried: []float64{500, 250, 125, 188, 157, 173},
		},
		{
			name: "ok/stops at the highest rate allowed", capacity: 1e9, plan: searchPlan{Start: 500, Min: 10, Max: 1500, Precision: 0.1, MaxSteps: 12},
			want: 1500, wantTried: []float64{500, 1000, 1500},
		},
		{
			name: "ok/stops after the step budget with the best rate so far", capacity: 3000, plan: searchPlan{Start: 500, Min: 10, Max: 100_000, Precision: 0.01, MaxSteps: 5},
			want: 3000, wantTried: []float64{500, 1000, 2000, 4000, 3000},
		},
		{
			name: "fail/nothing sustained, not even the minimum", capacity: 5, plan: searchPlan{Start: 40, Min: 10, Max: 100, Precision: 0.1, MaxSteps: 12},
			want: 0, wantTried: []float64{40, 20, 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &capacity{max: tt.capacity}
			got, err := searchMax(context.Background(), tt.plan, c.probe)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("max = %v, want %v", got, tt.want)
			}
			if !slices.Equal(c.tried, tt.wantTried) {
				t.Errorf("tried %v, want %v", c.tried, tt.wantTried)
			}
		})
	}
	t.Run("fail/an error of a step ends the search", func(t *testing.T) {
		boom := errors.New("server died")
		_, err := searchMax(context.Background(), plan, func(context.Context, float64) (bool, error) { return false, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want %v", err, boom)
		}
	})
}

func TestSustained(t *testing.T) {
	c := criteria{MinAchieved: 0.95, MaxP99: 50 * time.Millisecond}
	good := stepResult{Rate: 1000, Achieved: 990, Sampled: 50, Latency: percentiles{P99: 10 * time.Millisecond}}
	tests := []struct {
		name string
		step func(s *stepResult)
		want bool
	}{
		{"ok/kept up with no error and a bounded tail", func(*stepResult) {}, true},
		{"ok/exactly 95% of the rate", func(s *stepResult) { s.Achieved = 950 }, true},
		{"fail/one error", func(s *stepResult) { s.Errors, s.FirstError = 1, "500" }, false},
		{"fail/one sampled decision wrong", func(s *stepResult) { s.Wrong = 1 }, false},
		{"fail/fell behind the offered rate", func(s *stepResult) { s.Achieved = 900 }, false},
		{"fail/p99 above the bound", func(s *stepResult) { s.Latency.P99 = 51 * time.Millisecond }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.step(&s)
			ok, why := c.sustained(s)
			if ok != tt.want || (ok == (why != "")) {
				t.Errorf("sustained = %v (%q), want %v", ok, why, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var lat []time.Duration
	for i := 1000; i >= 1; i-- { // 1..1000 ms, unsorted
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	got := summarize(lat)
	want := percentiles{P50: 500 * time.Millisecond, P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: time.Second}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (percentiles{}) {
		t.Errorf("summarize(nil) = %+v, want zeros", got)
	}
	if got := summarize([]time.Duration{7}); got.P50 != 7 || got.P999 != 7 {
		t.Errorf("summarize of one = %+v", got)
	}
}

func TestIntendedLatency(t *testing.T) {
	start := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		seq  uint64
		end  time.Time
		want time.Duration
	}{
		{"ok/on time: from the scheduled send", 0, start.Add(12 * time.Millisecond), 2 * time.Millisecond},
		{"ok/a request queued behind a stall counts the stall", 99, start.Add(time.Second + 300*time.Millisecond), 300 * time.Millisecond},
		{"ok/never negative", 9, start.Add(50 * time.Millisecond), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := intendedLatency(start, tt.seq, 100, tt.end); got != tt.want {
				t.Errorf("intendedLatency = %s, want %s", got, tt.want)
			}
		})
	}
}
