package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// pause lets a server drain and collect garbage between steps.
const pause = time.Second

// busyRetry is the share of the machine's CPU other processes may take
// during a step before a failed step (or the measurement) is run again.
const busyRetry = 0.10

// benchmark runs scenario sc on peer p: a fresh server, a check that it
// allows valid credentials and denies a wrong one, the search for the
// highest sustained rate, and the measurement at half of it.
func benchmark(ctx context.Context, env *runEnv, p peer, sc scenario) (row, error) {
	r := row{Scenario: sc, Peer: p.Name(), Baseline: p.Baseline()}
	log := env.log.With("scenario", sc.Name, "peer", p.Name())
	dir := filepath.Join(env.dir, sc.Name+"-"+slug(p.Name()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	w, err := newWorkload(env.issuer, sc)
	if err != nil {
		return r, err
	}
	if env.opts.QuietWait > 0 {
		quiet, err := waitQuiet(ctx, busyRetry, env.opts.QuietWait)
		if err != nil {
			return r, err
		}
		if !quiet {
			log.Warn("the machine stayed busy; starting anyway", "waited", env.opts.QuietWait)
		}
	}
	srv, err := p.Start(ctx, env, sc, dir)
	if err != nil {
		return r, err
	}
	defer srv.stop()

	if err := checkDecisions(ctx, p, srv, w); err != nil {
		return r, fmt.Errorf("decisions: %w", err)
	}
	cfg := stepConfig{Duration: env.opts.Step, SampleEvery: env.opts.SampleEvery, Timeout: 5 * time.Second, MaxWorkers: 1024}
	crit := criteria{MinAchieved: 0.95, MaxP99: env.opts.MaxP99}
	step := func(ctx context.Context, rate float64, cfg stepConfig) (stepResult, error) {
		targets, err := targetsFor(p, srv, w, int(math.Ceil(rate*cfg.Duration.Seconds()*1.05))+64)
		if err != nil {
			return stepResult{}, err
		}
		select {
		case <-ctx.Done():
			return stepResult{}, ctx.Err()
		case <-time.After(pause):
		}
		return attack(ctx, p, srv.pid(), targets, rate, cfg)
	}
	// measured runs a step again, at most twice, when other processes took
	// more than busyRetry of the machine's CPU during it and it failed (or,
	// for the measurement, at all): other work must not decide the result.
	// Of the attempts, a sustained one counts, else the quietest.
	measured := func(ctx context.Context, rate float64, cfg stepConfig, retryAny bool) (stepResult, bool, string, error) {
		var best stepResult
		bestOK, bestWhy := false, ""
		for attempt := 0; ; attempt++ {
			res, err := step(ctx, rate, cfg)
			if err != nil {
				return res, false, "", err
			}
			ok, why := crit.sustained(res)
			log.Info("step", "rate", rate, "sustained", ok, "why", why, "achieved", math.Round(res.Achieved),
				"p50", res.Latency.P50, "p99", res.Latency.P99, "service_p50", res.Service.P50, "service_p99", res.Service.P99,
				"sampled", res.Sampled, "foreign_cpu", fmt.Sprintf("%.0f%%", 100*res.Foreign))
			if attempt == 0 || (ok && !bestOK) || (ok == bestOK && res.Foreign < best.Foreign) {
				best, bestOK, bestWhy = res, ok, why
			}
			if (ok && !retryAny) || res.Foreign <= busyRetry || attempt == 2 {
				r.Foreign = max(r.Foreign, best.Foreign)
				return best, bestOK, bestWhy, nil
			}
			log.Info("the machine was busy during the step; running it again")
			if _, err := waitQuiet(ctx, busyRetry, 15*time.Second); err != nil {
				return res, false, "", err
			}
		}
	}
	// One unmeasured step at the start rate first: the server's first
	// seconds under load (heap growth, caches, the first GC cycles) would
	// otherwise fail the search's first step and cap the search below it.
	if _, err := step(ctx, env.opts.StartRate, cfg); err != nil {
		return r, err
	}
	plan := searchPlan{Start: env.opts.StartRate, Min: 10, Max: env.opts.MaxRate, Precision: env.opts.Precision, MaxSteps: env.opts.MaxSteps}
	r.MaxRPS, err = searchMax(ctx, plan, func(ctx context.Context, rate float64) (bool, error) {
		_, ok, _, err := measured(ctx, rate, cfg, false)
		return ok, err
	})
	if err != nil {
		return r, err
	}
	if r.MaxRPS == 0 {
		r.Note = "no rate was sustained"
		return r, nil
	}
	half := math.Max(math.Round(r.MaxRPS/2), 1)
	mcfg := cfg
	mcfg.Duration = env.opts.Measure
	res, ok, why, err := measured(ctx, half, mcfg, true)
	if err != nil {
		return r, err
	}
	if !ok {
		r.Note = fmt.Sprintf("at half load (%.0f/s): %s", half, why)
	}
	r.Latency = res.Latency
	if res.OK > 0 {
		r.CPUPer1k = res.CPUSeconds / float64(res.OK) * 1000
	}
	if r.PeakRSS, err = peakRSS(srv.pid()); err != nil {
		return r, err
	}
	log.Info("measured", "max_rps", r.MaxRPS, "half", half, "p50", r.Latency.P50, "p99", r.Latency.P99, "p999", r.Latency.P999,
		"cpu_s_per_1k", fmt.Sprintf("%.3f", r.CPUPer1k), "peak_rss_mib", r.PeakRSS>>20)
	return r, nil
}

// targetsFor renders the requests of one step: n credentials' worth for
// fresh tokens and DPoP proofs, the warm tokens otherwise.
func targetsFor(p peer, srv *server, w *workload, n int) ([]vegeta.Target, error) {
	creds, err := w.credentials(n)
	if err != nil {
		return nil, err
	}
	out := make([]vegeta.Target, len(creds))
	for i, c := range creds {
		if out[i], err = p.Target(srv, c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkDecisions asks about every warm credential once (a warm-up that
// must allow them all, or a sample of fresh ones) and about a token for
// another audience, which must be denied.
func checkDecisions(ctx context.Context, p peer, srv *server, w *workload) error {
	creds, err := w.credentials(warmTokens)
	if err != nil {
		return err
	}
	for i, c := range creds {
		allow, body, err := ask(ctx, p, srv, c)
		if err != nil {
			return err
		}
		if !allow {
			return fmt.Errorf("credential %d denied: %s", i, body)
		}
	}
	bad, err := w.wrongAudience()
	if err != nil {
		return err
	}
	if allow, _, err := ask(ctx, p, srv, bad); err != nil || allow {
		return fmt.Errorf("a token for another audience: allow=%v, %v", allow, err)
	}
	return nil
}

// ask sends one request and reads the decision; body is the answer.
func ask(ctx context.Context, p peer, srv *server, c credential) (allow bool, body []byte, err error) {
	t, err := p.Target(srv, c)
	if err != nil {
		return false, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return false, nil, err
	}
	req.Header = t.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, nil, err
	}
	defer resp.Body.Close()
	if body, err = io.ReadAll(resp.Body); err != nil {
		return false, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, body, fmt.Errorf("%s: %d %s", t.URL, resp.StatusCode, body)
	}
	allow, err = p.Allowed(body)
	return allow, body, err
}

// slug turns a peer's label into a directory name: lower-case letters and
// digits, other runs of characters as one "-".
func slug(label string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(label) {
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
