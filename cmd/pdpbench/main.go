// Command pdpbench is the load benchmark of tokenguard against stock OPA
// (issue #7): it starts both on loopback with the same issuer key,
// audience and scope, drives them with the same open-loop, constant-rate
// load generator, finds each one's highest sustained throughput per
// scenario, measures latency, CPU and memory at half of it, and writes a
// Markdown table.
//
//	go run ./cmd/pdpbench --pdp .bin/pdp --opa .bin/opa
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/tokenguard/pdp/internal/cpuset"
	"github.com/tokenguard/pdp/internal/devissuer"
)

// options are the command-line settings of a run.
type options struct {
	PDP, OPA     string
	PolicyDir    string // the shipped policy (rego/)
	OPAPolicy    string // testdata/bench
	Scenarios    string
	Peers        string
	Out          string
	Step         time.Duration
	Measure      time.Duration
	StartRate    float64
	MaxRate      float64
	MaxP99       time.Duration
	MaxSteps     int
	Precision    float64
	SampleEvery  int
	Revocations  int
	Fingerprints int
	Quick        bool
	Keep         bool
	QuietWait    time.Duration
	HerdRate     float64
	HerdDuration time.Duration
	HerdOut      string
	// ServerCPUs and GeneratorCPUs pin the peers' processes and this
	// process (the load generator); empty: not pinned.
	ServerCPUs, GeneratorCPUs cpuset.Set
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("pdpbench", flag.ContinueOnError)
	fs.StringVar(&o.PDP, "pdp", ".bin/pdp", "the pdp binary")
	fs.StringVar(&o.OPA, "opa", ".bin/opa", "the stock opa binary (same version as the module pins)")
	fs.StringVar(&o.PolicyDir, "policy-dir", "rego", "tokenguard's shipped policy and data")
	fs.StringVar(&o.OPAPolicy, "opa-policy", "testdata/bench", "directory of the stock-OPA policy.rego and data.json")
	fs.StringVar(&o.Scenarios, "scenarios", "all", "comma-separated: warm, cold, routes1k, routes10k, dpop, revoked, herd, or all")
	fs.Float64Var(&o.HerdRate, "herd-rate", 0, "rate the herd scenario offers a cold replica (0: the warm scenario's maximum of the same run)")
	fs.DurationVar(&o.HerdDuration, "herd-duration", 10*time.Second, "duration of the herd scenario")
	fs.StringVar(&o.HerdOut, "herd-out", "", "where to write the herd report as well as stdout (empty: stdout only)")
	fs.StringVar(&o.Peers, "peers", "opa,tokenguard,tokenguard-defaults", "comma-separated peers, run in turn per scenario: opa, tokenguard (decision logs off, like stock OPA), tokenguard-defaults (the default configuration: decision logs on the console), tokenguard-redis (needs redis-server), opa-jwtcache")
	fs.StringVar(&o.Out, "out", "", "a file to write the Markdown table to as well as stdout (empty: stdout only); published results live in docs/performance.md")
	serverCPUs := fs.String("server-cpus", "", "CPU list the peers' processes run on (taskset -c syntax, e.g. 0 or 0-3; empty: not pinned)")
	generatorCPUs := fs.String("generator-cpus", "", "CPU list the load generator (this process) runs on (e.g. 1; empty: not pinned)")
	fs.DurationVar(&o.Step, "step", 3*time.Second, "duration of each step of the throughput search")
	fs.DurationVar(&o.Measure, "measure", 6*time.Second, "duration of the latency measurement at half the highest sustained rate")
	fs.Float64Var(&o.StartRate, "start-rate", 500, "first rate of the search, requests per second")
	fs.Float64Var(&o.MaxRate, "max-rate", 100_000, "highest rate tried")
	fs.DurationVar(&o.MaxP99, "max-p99", 50*time.Millisecond, "a step whose p99 is above this is not sustained")
	fs.IntVar(&o.MaxSteps, "max-steps", 10, "steps per search")
	fs.Float64Var(&o.Precision, "precision", 0.1, "stop bisecting when the bracket is narrower than this fraction")
	fs.IntVar(&o.SampleEvery, "sample-every", 20, "check the decision of one answer in this many")
	fs.IntVar(&o.Revocations, "revocations", 1_000_000, "revocations preloaded for the revoked-heavy scenario")
	fs.IntVar(&o.Fingerprints, "fingerprints", 1_000_000, "fingerprints preloaded for the revoked-heavy scenario")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 0, "before each peer starts, wait up to this long for a second with the machine under 10% busy (0: do not wait)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run's temporary directory (configs, server logs, state files)")
	fs.BoolVar(&o.Quick, "quick", false, "a smoke run: 1s steps, few of them, 10,000 preloaded records")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	if o.ServerCPUs, err = cpuset.Parse(*serverCPUs); err != nil {
		return o, fmt.Errorf("--server-cpus: %w", err)
	}
	if o.GeneratorCPUs, err = cpuset.Parse(*generatorCPUs); err != nil {
		return o, fmt.Errorf("--generator-cpus: %w", err)
	}
	if o.Quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"step":         func() { o.Step = time.Second },
			"measure":      func() { o.Measure = time.Second },
			"start-rate":   func() { o.StartRate = 200 },
			"max-steps":    func() { o.MaxSteps = 5 },
			"precision":    func() { o.Precision = 0.25 },
			"revocations":  func() { o.Revocations = 10_000 },
			"fingerprints": func() { o.Fingerprints = 10_000 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	if o.Step <= 0 || o.Measure <= 0 || o.StartRate < 1 || o.MaxRate < o.StartRate || o.MaxSteps < 1 || o.Precision <= 0 {
		return o, errors.New("--step, --measure, --start-rate, --max-rate, --max-steps and --precision must be positive (max-rate ≥ start-rate)")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdpbench:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, o, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "pdpbench:", err)
		os.Exit(1)
	}
}

// runEnv is what every scenario of a run shares: a temporary directory,
// the issuer and the files both peers read.
type runEnv struct {
	opts      options
	log       *slog.Logger
	dir       string
	issuer    *devissuer.Issuer
	jwksFile  string // for tokenguard
	policyDir string // tokenguard's policy: shipped modules and data
	opaPolicy string // testdata/bench/policy.rego
	opaData   string // testdata/bench/data.json with the run's JWKS
}

// run benchmarks every selected scenario on every selected peer that
// supports it, peers taking turns within a scenario, and writes the table.
func run(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) error {
	scs, err := selectScenarios(o.Scenarios)
	if err != nil {
		return err
	}
	if err := cpuset.PinProcess(o.GeneratorCPUs); err != nil {
		return err
	}
	all := peersByName(o.PDP, o.OPA)
	var peers []peer
	for n := range strings.SplitSeq(o.Peers, ",") {
		p, ok := all[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("unknown peer %q (known: opa, tokenguard, tokenguard-defaults, tokenguard-redis, opa-jwtcache)", n)
		}
		peers = append(peers, p)
	}
	env, err := newRunEnv(o, log)
	if err != nil {
		return err
	}
	if o.Keep {
		log.Info("keeping the run's files", "dir", env.dir)
	} else {
		defer os.RemoveAll(env.dir)
	}

	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now(), Pinning: pinning(o.ServerCPUs, o.GeneratorCPUs)}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	m.CPU = parseCPUModel(string(cpuinfo))
	m.OPAVersion = opaVersion(o.OPA)

	var rows []row
	var herds []herdResult
	for _, sc := range scs {
		for _, p := range peers {
			if !p.Supports(sc) {
				continue
			}
			if sc.Herd {
				rate := o.HerdRate
				for _, r := range rows {
					if rate == 0 && r.Scenario.Name == "warm" && r.Peer == p.Name() {
						rate = r.MaxRPS
					}
				}
				if rate < 1 {
					return fmt.Errorf("herd, %s: needs --herd-rate or the warm scenario in the same run", p.Name())
				}
				h, err := herd(ctx, env, p, sc, rate, o.HerdDuration)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", sc.Title, p.Name(), err)
				}
				herds = append(herds, h)
				continue
			}
			r, err := benchmark(ctx, env, p, sc)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sc.Title, p.Name(), err)
			}
			rows = append(rows, r)
		}
	}
	settings := fmt.Sprintf("search steps of %s (≥ 95%% of the offered rate, no error, sampled decisions correct, p99 ≤ %s), %s at half load; latency from the intended send time",
		o.Step, o.MaxP99, o.Measure)
	if len(rows) > 0 {
		table := renderMarkdown(m, rows, settings)
		if _, err := io.WriteString(stdout, table); err != nil {
			return err
		}
		if o.Out != "" {
			if err := os.WriteFile(o.Out, []byte(table), 0o644); err != nil {
				return err
			}
		}
	}
	if len(herds) > 0 {
		report := renderHerd(m, herds)
		if _, err := io.WriteString(stdout, report); err != nil {
			return err
		}
		if o.HerdOut != "" {
			if err := os.WriteFile(o.HerdOut, []byte(report), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func newRunEnv(o options, log *slog.Logger) (*runEnv, error) {
	dir, err := os.MkdirTemp("", "pdpbench-")
	if err != nil {
		return nil, err
	}
	e := &runEnv{opts: o, log: log, dir: dir}
	fail := func(err error) (*runEnv, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if e.issuer, err = devissuer.New(issuerURL, "ES256"); err != nil {
		return fail(err)
	}
	e.jwksFile = filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(e.jwksFile, e.issuer.JWKS(), 0o600); err != nil {
		return fail(err)
	}
	if e.policyDir, err = benchPolicy(o.PolicyDir, filepath.Join(dir, "policy"), 0); err != nil {
		return fail(err)
	}
	e.opaPolicy = filepath.Join(o.OPAPolicy, "policy.rego")
	if e.opaData, err = opaData(filepath.Join(o.OPAPolicy, "data.json"), e.issuer.JWKS(), filepath.Join(dir, "opa-data.json")); err != nil {
		return fail(err)
	}
	return e, nil
}

// benchPolicy copies the shipped Rego modules (not their tests) and
// data.json to dst, adding the benchmark's client with allowed_cidrs so
// that the network guardrail runs on every request too, and routes routes
// that the requests do not match before the shipped ones.
func benchPolicy(src, dst string, routes int) (string, error) {
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		return "", fmt.Errorf("copying the policy: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(src, "data.json"))
	if err != nil {
		return "", err
	}
	var data struct {
		PDP map[string]any `json:"pdp"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return "", fmt.Errorf("%s/data.json: %w", src, err)
	}
	clients, _ := data.PDP["clients"].(map[string]any)
	if clients == nil {
		clients = map[string]any{}
	}
	clients[clientID] = map[string]any{"allowed_cidrs": []string{remoteIP + "/24"}}
	data.PDP["clients"] = clients
	if routes > 0 {
		shipped, _ := data.PDP["routes"].([]any)
		data.PDP["routes"] = append(extraRoutes(routes), shipped...)
	}
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(filepath.Join(dst, "data.json"), out, 0o600)
}

// extraRoutes are n routes none of which matches the benchmark's request
// (GET https://api.example.com/v1/accounts/42), a mix of what a real API
// has: exact paths, "*" segments, "**" prefixes, other hosts, other
// methods. No two are alike: the policy refuses a route that an earlier
// one shadows.
func extraRoutes(n int) []any {
	out := make([]any, n)
	for i := range n {
		r := map[string]any{
			"name":        fmt.Sprintf("route %d", i),
			"audience":    "https://api.example.com",
			"scopes":      []string{fmt.Sprintf("svc%d:read", i)},
			"grant_types": []string{"authorization_code", "client_credentials"},
			"host":        "api.example.com",
		}
		switch i % 5 {
		case 0:
			r["path"] = fmt.Sprintf("/v1/svc%d/items", i)
			r["methods"] = []string{"GET"}
		case 1:
			r["path"] = fmt.Sprintf("/v1/svc%d/*/details", i)
		case 2:
			r["path"] = fmt.Sprintf("/v2/svc%d/**", i)
		case 3:
			r["host"] = fmt.Sprintf("svc%d.example.com", i)
			r["path"] = "/v1/accounts/*"
		case 4:
			r["path"] = fmt.Sprintf("/v1/svc%d/accounts/*", i)
			r["methods"] = []string{"POST", "DELETE"}
		}
		out[i] = r
	}
	return out
}

// opaData writes the stock-OPA data file with the run's JWKS to dst.
func opaData(src string, jwks []byte, dst string) (string, error) {
	raw, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	var data struct {
		Bench struct {
			Settings map[string]any `json:"settings"`
		} `json:"bench"`
	}
	if err := json.Unmarshal(raw, &data); err != nil || data.Bench.Settings == nil {
		return "", fmt.Errorf("%s: want {\"bench\": {\"settings\": {...}}}: %v", src, err)
	}
	data.Bench.Settings["jwks"] = string(jwks)
	out, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, out, 0o600)
}

// opaVersion is the "Version:" line of `opa version`.
func opaVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
