package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// criteria say when a step of constant load was sustained.
type criteria struct {
	// MinAchieved is the fraction of the offered rate that must complete
	// within the step (0.95: at most 5% late).
	MinAchieved float64
	// MaxP99 bounds the 99th percentile latency of the step.
	MaxP99 time.Duration
}

// sustained reports whether s kept up with its offered rate: no error, every
// sampled decision correct, the rate achieved and the tail latency bounded.
// The reason is empty when it did.
func (c criteria) sustained(s stepResult) (bool, string) {
	switch {
	case s.Errors > 0:
		return false, fmt.Sprintf("%d errors (first: %s)", s.Errors, strings.Join(strings.Fields(s.FirstError), " "))
	case s.Wrong > 0:
		return false, fmt.Sprintf("%d of %d sampled decisions wrong", s.Wrong, s.Sampled)
	case s.Achieved < c.MinAchieved*s.Rate:
		return false, fmt.Sprintf("achieved %.0f/s of %.0f/s", s.Achieved, s.Rate)
	case s.Latency.P99 > c.MaxP99:
		return false, fmt.Sprintf("p99 %s above %s", s.Latency.P99.Round(10*time.Microsecond), c.MaxP99)
	}
	return true, ""
}

// searchPlan bounds the search for the highest sustained rate.
type searchPlan struct {
	// Start is the first rate tried; it doubles while steps are sustained.
	Start float64
	// Min and Max bound the rates tried.
	Min, Max float64
	// Precision stops the bisection once the bracket [ok, failed] is
	// narrower than this fraction of ok.
	Precision float64
	// MaxSteps bounds the steps of one search.
	MaxSteps int
}

// probe runs one step at a constant rate and reports whether it was
// sustained.
type probe func(ctx context.Context, rate float64) (bool, error)

// searchMax finds the highest rate at which probe is sustained: it doubles
// from plan.Start until a step fails (halving instead when the first one
// fails), then bisects between the last sustained and the first failed
// rate. It returns 0 when not even plan.Min was sustained. Rates are whole
// requests per second.
func searchMax(ctx context.Context, plan searchPlan, try probe) (float64, error) {
	steps := 0
	run := func(rate float64) (bool, error) {
		steps++
		return try(ctx, rate)
	}
	var ok, failed float64 // highest sustained, lowest failed; 0 = none yet
	rate := math.Round(math.Min(math.Max(plan.Start, plan.Min), plan.Max))
	for steps < plan.MaxSteps {
		good, err := run(rate)
		if err != nil {
			return 0, err
		}
		if good {
			ok = rate
			if failed > 0 || rate >= plan.Max {
				break
			}
			rate = math.Min(math.Round(rate*2), plan.Max)
			continue
		}
		failed = rate
		if ok > 0 {
			break
		}
		if rate <= plan.Min {
			return 0, nil
		}
		rate = math.Max(math.Round(rate/2), plan.Min)
	}
	for ok > 0 && failed > 0 && failed-ok > plan.Precision*ok && steps < plan.MaxSteps {
		mid := math.Round((ok + failed) / 2)
		if mid <= ok || mid >= failed {
			break
		}
		good, err := run(mid)
		if err != nil {
			return 0, err
		}
		if good {
			ok = mid
		} else {
			failed = mid
		}
	}
	return ok, nil
}
