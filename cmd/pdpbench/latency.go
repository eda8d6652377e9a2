package main

import (
	"math"
	"slices"
	"time"
)

// percentiles are the latency percentiles reported for a step.
type percentiles struct {
	P50, P99, P999, Max time.Duration
}

// summarize returns the percentiles of lat (nearest rank), sorting lat in
// place. No latencies give zeros.
func summarize(lat []time.Duration) percentiles {
	if len(lat) == 0 {
		return percentiles{}
	}
	slices.Sort(lat)
	return percentiles{
		P50:  quantile(lat, 0.50),
		P99:  quantile(lat, 0.99),
		P999: quantile(lat, 0.999),
		Max:  lat[len(lat)-1],
	}
}

// quantile is the nearest-rank q-quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// intendedLatency is a request's latency measured from the moment the
// constant-rate schedule meant to send it rather than from when it was
// sent: a server that stalls cannot hide the requests queued behind the
// stall (no coordinated omission). Request seq (from 0) is due (seq+1)/rate
// after the start, as vegeta's constant pacer schedules it.
func intendedLatency(start time.Time, seq uint64, rate float64, end time.Time) time.Duration {
	intended := start.Add(time.Duration(float64(seq+1) / rate * float64(time.Second)))
	d := end.Sub(intended)
	return max(d, 0)
}
