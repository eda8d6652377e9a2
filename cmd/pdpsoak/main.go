// Command pdpsoak runs one pdp under mixed traffic for a long while and
// reports what an operator would watch: server errors, memory and
// goroutines over time, and whether every revocation it acknowledged is
// enforced at the end.
//
// The traffic, at a constant rate: reused bearer tokens, fresh tokens,
// DPoP-bound tokens with fresh proofs, invalid tokens and tokens of revoked
// subjects, each answer checked against what it must be. Beside it: a
// subject revocation through the admin API every second, a Shared Signals
// event every five, a policy data edit every thirty, and one kill -9 and
// restart in the middle.
//
//	go run ./cmd/pdpsoak --pdp .bin/pdp --duration 10m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokenguard/pdp/internal/cpuset"
)

// options are the command-line settings of a run.
type options struct {
	PDP       string
	PolicyDir string
	Duration  time.Duration
	Rate      float64
	Workers   int
	Out       string
	Keep      bool
	// ServerCPUs and GeneratorCPUs pin the pdp and this process, so that
	// the pdp's answers are not held up by the load generator's work.
	ServerCPUs, GeneratorCPUs cpuset.Set
	// FreshTTL is the lifetime of the fresh bearer tokens: the caches
	// hold them that long, so after it (and a sweep) they are as full as
	// they will get, and memory must stay flat from then on.
	FreshTTL time.Duration
}

// defaultRate is about half the warm maximum of this mix on a machine of 2
// cores shared with the load generator: 1,000 decisions/s are answered for
// 10 minutes without an error there (but for a rare few at a policy edit),
// 2,000 are not (DPoP proofs' spends wait for fsyncs that the disk sometimes
// takes 20–120 ms to do; docs/performance.md, Soak).
const defaultRate = 1000

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("pdpsoak", flag.ContinueOnError)
	fs.StringVar(&o.PDP, "pdp", ".bin/pdp", "the pdp binary")
	fs.StringVar(&o.PolicyDir, "policy-dir", "rego", "the shipped policy and data, copied for the run")
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "how long the traffic runs")
	fs.Float64Var(&o.Rate, "rate", defaultRate, "decisions per second (half the warm maximum of this mix on the machine is the usual choice)")
	fs.IntVar(&o.Workers, "workers", 128, "concurrent requests at most")
	fs.StringVar(&o.Out, "out", "", "also write the Markdown report to this file")
	fs.DurationVar(&o.FreshTTL, "fresh-token-ttl", 2*time.Minute, "lifetime of the fresh bearer tokens; memory is compared once the pdp has run this long plus a minute")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run's temporary directory (config, server log, state)")
	serverCPUs := fs.String("server-cpus", "", "CPU list the pdp runs on (taskset -c syntax, e.g. 0; empty: not pinned)")
	generatorCPUs := fs.String("generator-cpus", "", "CPU list the load generator (this process) runs on (e.g. 1; empty: not pinned)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		// `go tool task soak -- 10m`: a bare duration, and maybe flags
		// after it (which flag.Parse leaves alone past an argument).
		d, err := time.ParseDuration(fs.Arg(0))
		if err == nil {
			err = fs.Parse(fs.Args()[1:])
		}
		if err != nil || fs.NArg() > 0 {
			return o, fmt.Errorf("unexpected arguments %q (a duration, like 10m, and flags)", args)
		}
		o.Duration = d
	}
	var err error
	if o.ServerCPUs, err = cpuset.Parse(*serverCPUs); err != nil {
		return o, fmt.Errorf("--server-cpus: %w", err)
	}
	if o.GeneratorCPUs, err = cpuset.Parse(*generatorCPUs); err != nil {
		return o, fmt.Errorf("--generator-cpus: %w", err)
	}
	switch {
	case o.Duration < 30*time.Second:
		return o, errors.New("--duration must be at least 30s (a restart happens in the middle)")
	case o.Rate <= 0 || o.Rate > 1e6:
		return o, errors.New("--rate must be between 0 and 1,000,000")
	case o.Workers < 1 || o.Workers > 10_000:
		return o, errors.New("--workers must be between 1 and 10,000")
	case o.FreshTTL < 30*time.Second || o.FreshTTL > tokenTTL:
		return o, fmt.Errorf("--fresh-token-ttl must be between 30s and %s", tokenTTL)
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdpsoak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := cpuset.PinProcess(o.GeneratorCPUs); err != nil {
		fmt.Fprintln(os.Stderr, "pdpsoak:", err)
		os.Exit(1)
	}
	ok, err := run(ctx, o, os.Stdout, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdpsoak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run sets the soak up, runs it and writes the report; ok is false when
// the run found what a soak must not (5xx outside the cold starts, a lost
// revocation, a wrong answer).
func run(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) (ok bool, err error) {
	env, err := newEnv(o)
	if err != nil {
		return false, err
	}
	defer func() {
		if o.Keep {
			log.Info("kept the run's files", "dir", env.dir)
			return
		}
		os.RemoveAll(env.dir)
	}()
	srv, err := env.start(ctx)
	if err != nil {
		return false, err
	}
	defer func() { srv.stop() }()
	log.Info("pdp ready", "addr", env.addr, "rate", o.Rate, "duration", o.Duration)

	s := newSoak(env, o, log)
	res, err := s.run(ctx, &srv)
	if err != nil {
		return false, err
	}
	report := res.markdown(o)
	fmt.Fprint(stdout, report)
	if o.Out != "" {
		if err := os.WriteFile(o.Out, []byte(report), 0o644); err != nil {
			return false, err
		}
	}
	return res.passed(), nil
}
