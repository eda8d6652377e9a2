package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/tokenguard/pdp/internal/cpuset"
)

// peer is one decision service under load: how to start it for a scenario,
// how to ask it about a credential, and how to read its answer. Adding a
// configuration (another store, another policy) is adding a peer.
type peer interface {
	// Name labels the peer in the table and on the command line.
	Name() string
	// Baseline marks stock OPA, the peer the others are compared with.
	Baseline() bool
	// Supports reports whether the peer can run sc.
	Supports(sc scenario) bool
	// Start launches the server for sc with its files under dir.
	Start(ctx context.Context, run *runEnv, sc scenario, dir string) (*server, error)
	// Target is the request asking srv about c.
	Target(srv *server, c credential) (vegeta.Target, error)
	// Allowed reads a decision from a response body.
	Allowed(body []byte) (bool, error)
}

// server is a peer's running process.
type server struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	log  string // the process's combined output
	done chan struct{}
	// companions are stopped after the server (a Redis it uses).
	companions []*server
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// startServer runs bin with args, its output going to logFile, and waits
// until GET base+ready answers 200.
func startServer(ctx context.Context, cpus cpuset.Set, bin string, args []string, base, ready, logFile string) (*server, error) {
	cmd, err := cpuset.Command(cpus, bin, args...)
	if err != nil {
		return nil, err
	}
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &server{cmd: cmd, base: base, log: logFile, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%s exited before it was ready:\n%s", bin, tail(logFile))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(base + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	s.stop()
	return nil, fmt.Errorf("%s not ready after 2 minutes:\n%s", bin, tail(logFile))
}

// stop ends the process: SIGTERM, then SIGKILL after 10 seconds.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	for _, c := range s.companions {
		c.stop()
	}
}

// startRedis runs a redis-server on a free loopback port, its files in dir,
// appending every write to its log once a second (a production Redis that
// holds revocations persists them), and waits until it answers PING.
func startRedis(ctx context.Context, cpus cpuset.Set, dir string) (*server, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("the redis peers need redis-server (apt-get install -y redis-server): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	logFile := filepath.Join(dir, "redis.log")
	cmd, err := cpuset.Command(cpus, bin, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--logfile", logFile, "--daemonize", "no")
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &server{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return s, addr, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, "", fmt.Errorf("redis-server did not answer on %s:\n%s", addr, tail(logFile))
}

// tail returns the end of a log file, for error messages.
func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freeAddr returns a loopback address with a free port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// tokenguard is the pdp binary with the shipped policy, every guardrail on.
type tokenguard struct {
	name string
	bin  string
	// extraConfig is YAML appended to the generated configuration.
	extraConfig string
	// redis runs the peer with store.backend redis, on a redis-server of
	// its own (whose CPU and memory the table does not count).
	redis bool
	// defaults runs tokenguard's default configuration: decision logs on
	// the console (the server's log file here), log level info.
	defaults bool
}

func (p *tokenguard) Name() string   { return p.name }
func (p *tokenguard) Baseline() bool { return false }

// Supports: the redis peer runs the bearer scenarios (the preloaded state
// of revoked-heavy is a bbolt file's).
func (p *tokenguard) Supports(sc scenario) bool         { return !p.redis || !sc.Preload }
func (p *tokenguard) Allowed(body []byte) (bool, error) { return allowedDecision(body) }

func (p *tokenguard) Start(ctx context.Context, run *runEnv, sc scenario, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if sc.Preload {
		if err := preload(ctx, dataDir, run.opts.Revocations, run.opts.Fingerprints, run.log); err != nil {
			return nil, err
		}
	}
	extra := p.extraConfig
	var redisSrv *server
	if p.redis {
		var raddr string
		if redisSrv, raddr, err = startRedis(ctx, run.opts.ServerCPUs, dir); err != nil {
			return nil, err
		}
		extra += fmt.Sprintf("store:\n  backend: redis\n  redis:\n    addrs: [%s]\n", raddr)
	}
	policyDir := run.policyDir
	if sc.Routes > 0 {
		if policyDir, err = benchPolicy(run.opts.PolicyDir, filepath.Join(dir, "policy"), sc.Routes); err != nil {
			return nil, err
		}
	}
	// Decision logs go nowhere, as stock OPA's (off by default) do not;
	// the defaults peer keeps tokenguard's defaults (console decision logs).
	logs := "decision_logs:\n  console: false\nlog:\n  level: warn\n"
	if p.defaults {
		logs = ""
	}
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
environment: prod
policy:
  dir: %s
issuers:
  - issuer: %s
    jwks_file: %s
    audiences: [%s]
    algorithms: [ES256]
    access_token_type: at+jwt
%s%s`, addr, dataDir, policyDir, issuerURL, run.jwksFile, audience, logs, extra)
	file := filepath.Join(dir, "pdp.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		if redisSrv != nil {
			redisSrv.stop()
		}
		return nil, err
	}
	srv, err := startServer(ctx, run.opts.ServerCPUs, p.bin, []string{"serve", "--config", file}, "http://"+addr, "/readyz", filepath.Join(dir, "pdp.log"))
	if redisSrv != nil {
		if err != nil {
			redisSrv.stop()
			return nil, err
		}
		srv.companions = append(srv.companions, redisSrv)
	}
	return srv, err
}

// decideRequest is the body of POST /v1/decide.
type decideRequest struct {
	Request struct {
		Method   string            `json:"method"`
		URL      string            `json:"url"`
		Headers  map[string]string `json:"headers"`
		RemoteIP string            `json:"remote_ip"`
	} `json:"request"`
}

func (p *tokenguard) Target(srv *server, c credential) (vegeta.Target, error) {
	var body decideRequest
	body.Request.Method, body.Request.URL, body.Request.RemoteIP = method, decideURL, remoteIP
	body.Request.Headers = map[string]string{"authorization": "Bearer " + c.Token, "user-agent": userAgent}
	if c.Proof != "" {
		body.Request.Headers["authorization"] = "DPoP " + c.Token
		body.Request.Headers["dpop"] = c.Proof
	}
	b, err := json.Marshal(body)
	return vegeta.Target{Method: "POST", URL: srv.base + "/v1/decide", Body: b, Header: jsonHeader}, err
}

// allowedDecision reads a tokenguard decision: an allow must come with
// status 200 and no reasons.
func allowedDecision(body []byte) (bool, error) {
	var d struct {
		Allow   *bool             `json:"allow"`
		Status  int               `json:"status"`
		Reasons []json.RawMessage `json:"reasons"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return false, fmt.Errorf("decision is not JSON: %w", err)
	}
	if d.Allow == nil {
		return false, errors.New("decision without allow")
	}
	if *d.Allow && (d.Status != http.StatusOK || len(d.Reasons) != 0) {
		return false, fmt.Errorf("an allow with status %d and reasons %s", d.Status, body)
	}
	return *d.Allow, nil
}

// stockOPA is `opa run --server` with the policy of testdata/bench.
type stockOPA struct {
	name string
	bin  string
	// config is an OPA configuration file's content; empty: none.
	config string
	// baseline marks the peer other peers are compared with.
	baseline bool
}

func (p *stockOPA) Name() string   { return p.name }
func (p *stockOPA) Baseline() bool { return p.baseline }

// Supports: OPA alone has no DPoP and no revocation store.
func (p *stockOPA) Supports(sc scenario) bool { return sc.StockOPA }

func (p *stockOPA) Start(ctx context.Context, run *runEnv, sc scenario, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--server", "--addr", addr, "--log-level", "error", "--disable-telemetry"}
	if p.config != "" {
		file := filepath.Join(dir, "opa.yaml")
		if err := os.WriteFile(file, []byte(p.config), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--config-file", file)
	}
	args = append(args, run.opaPolicy, run.opaData)
	return startServer(ctx, run.opts.ServerCPUs, p.bin, args, "http://"+addr, "/health", filepath.Join(dir, "opa.log"))
}

func (p *stockOPA) Target(srv *server, c credential) (vegeta.Target, error) {
	b, err := json.Marshal(map[string]any{"input": map[string]any{"token": c.Token, "method": method, "path": path}})
	return vegeta.Target{Method: "POST", URL: srv.base + "/v1/data/bench/authz/allow", Body: b, Header: jsonHeader}, err
}

// Allowed reads {"result": bool}; an undefined result is an error.
func (p *stockOPA) Allowed(body []byte) (bool, error) {
	var d struct {
		Result *bool `json:"result"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return false, fmt.Errorf("answer is not JSON: %w", err)
	}
	if d.Result == nil {
		return false, fmt.Errorf("no result: %s", strings.TrimSpace(string(body)))
	}
	return *d.Result, nil
}

// peersByName builds the selectable peers.
func peersByName(pdpBin, opaBin string) map[string]peer {
	return map[string]peer{
		"opa":        &stockOPA{name: "opa", bin: opaBin, baseline: true},
		"tokenguard": &tokenguard{name: "tokenguard", bin: pdpBin},
		// The default configuration, which users run: decision logs on the
		// console.
		"tokenguard-defaults": &tokenguard{name: "tokenguard (defaults)", bin: pdpBin, defaults: true},
		// The same with the guardrail state shared through Redis (issue #8):
		// fingerprints, DPoP jtis and families on the network, revocations
		// still read from the local bbolt.
		"tokenguard-redis": &tokenguard{name: "tokenguard (redis store)", bin: pdpBin, redis: true},
		// OPA with its JWT verification cache, off by default, switched on:
		// the closest stock OPA gets to tokenguard's token cache.
		"opa-jwtcache": &stockOPA{name: "opa (io.jwt cache)", bin: opaBin, config: `caching:
  inter_query_builtin_value_cache:
    named:
      io_jwt:
        max_num_entries: 100000
`},
	}
}
