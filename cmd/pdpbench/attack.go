package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// stepResult is what one step of constant load measured.
type stepResult struct {
	// Rate is the offered rate, requests per second.
	Rate float64
	// Sent counts the requests made, OK those answered 200.
	Sent, OK int
	// Achieved is OK per second, from the start of the step to the last
	// answer.
	Achieved float64
	// Errors counts transport errors and non-200 answers.
	Errors     int
	FirstError string
	// Sampled counts the answers whose decision was checked, Wrong those
	// that were not what the credential deserves.
	Sampled, Wrong int
	// Latency is measured from the intended send time (see intendedLatency);
	// Service from the actual one, for comparison.
	Latency, Service percentiles
	// CPUSeconds is the server's CPU time during the step.
	CPUSeconds float64
	// Foreign is the share of the machine's CPU capacity that other
	// processes used during the step (0..1).
	Foreign float64
}

// stepConfig is the fixed part of every step.
type stepConfig struct {
	Duration time.Duration
	// SampleEvery checks the decision of one answer in SampleEvery.
	SampleEvery int
	// Timeout bounds one request.
	Timeout time.Duration
	// MaxWorkers bounds the requests in flight.
	MaxWorkers uint64
}

// attack offers targets, in turn, at rate for cfg.Duration and checks
// that every sampled answer allows. It measures the server process pid's
// CPU time over the step.
func attack(ctx context.Context, p peer, pid int, targets []vegeta.Target, rate float64, cfg stepConfig) (stepResult, error) {
	res := stepResult{Rate: rate}
	var next atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		*t = targets[(next.Add(1)-1)%uint64(len(targets))]
		return nil
	}
	atk := vegeta.NewAttacker(
		vegeta.Timeout(cfg.Timeout),
		vegeta.Workers(64),
		vegeta.MaxWorkers(cfg.MaxWorkers),
		vegeta.KeepAlive(true),
		vegeta.Connections(int(cfg.MaxWorkers)),
		vegeta.HTTP2(false),
		vegeta.Redirects(vegeta.NoFollow),
	)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	cpu0, err := sampleCPU(pid)
	if err != nil {
		return res, err
	}
	sample := uint64(max(cfg.SampleEvery, 1))
	lat := make([]time.Duration, 0, int(rate*cfg.Duration.Seconds())+16)
	svc := make([]time.Duration, 0, cap(lat))
	start := time.Now()
	var last time.Time
	for r := range atk.Attack(targeter, vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}, cfg.Duration, "") {
		res.Sent++
		if end := r.End(); end.After(last) {
			last = end
		}
		if r.Error != "" || r.Code != 200 {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%d %s %.200s", r.Code, r.Error, r.Body)
			}
			continue
		}
		res.OK++
		lat = append(lat, intendedLatency(start, r.Seq, rate, r.End()))
		svc = append(svc, r.Latency)
		if r.Seq%sample == 0 {
			res.Sampled++
			if allow, err := p.Allowed(r.Body); err != nil || !allow {
				res.Wrong++
			}
		}
	}
	cpu1, err := sampleCPU(pid)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.CPUSeconds = cpu1.Server - cpu0.Server
	if wall := time.Since(start).Seconds(); wall > 0 {
		res.Foreign = foreign(cpu0, cpu1) / (wall * float64(runtime.NumCPU()))
	}
	if wall := last.Sub(start).Seconds(); wall > 0 {
		res.Achieved = float64(res.OK) / wall
	}
	res.Latency, res.Service = summarize(lat), summarize(svc)
	return res, nil
}
