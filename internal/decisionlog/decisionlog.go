// Package decisionlog records decisions through OPA's decision-log plugin,
// driven by a plugin manager of its own: events go to the process log
// (console) and/or a remote decision-log service (gzip'ed JSON batches,
// OPA's decision-log API), after the system.log mask policy (mask.rego)
// erased anything that looks like a credential.
//
// Which decisions are written is decided in Go, before any work is done
// for the entry: denies and errors always; allows unless drop_allows, and
// then a sample_rate fraction of them, chosen by decision id. Only an entry
// that will be written pays for converting the policy input to a Go value.
package decisionlog

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

//go:embed mask.rego
var maskPolicy []byte

// maskModule is the name of the mask policy in the plugin's store.
const maskModule = "tokenguard/decisionlog/mask.rego"

// service names the remote decision-log service in the manager's config.
const service = "decision_logs"

// decisionPath is the path events name (the decision the policy makes).
var decisionPath = strings.ReplaceAll(strings.TrimPrefix(policy.Query, "data."), ".", "/")

// Defaults of Options.
const (
	DefaultMinUploadDelay = 5 * time.Second
	DefaultMaxUploadDelay = 15 * time.Second
	// DefaultBufferBytes bounds the events waiting for upload; past it the
	// oldest are dropped (by the plugin) rather than memory growing.
	DefaultBufferBytes = 64 << 20
)

// Options tune a Logger. Zero fields take their defaults.
type Options struct {
	// Logger is the process log: the console sink writes events to it (at
	// info), the plugin its own warnings and errors (failed uploads).
	Logger *slog.Logger
	// MinUploadDelay and MaxUploadDelay bound the pause between two
	// uploads to the remote service (whole seconds).
	MinUploadDelay, MaxUploadDelay time.Duration
	// BufferBytes bounds the events waiting for upload.
	BufferBytes int64
	// Labels are added to every event, besides OPA's id and version.
	Labels map[string]string
}

// Logger writes decision-log events. It is safe for concurrent use; a nil
// *Logger logs nothing.
type Logger struct {
	manager    *plugins.Manager
	plugin     *logs.Plugin
	log        *slog.Logger
	console    bool
	remote     bool
	dropAllows bool
	rate       float64
	// threshold is rate scaled to the uint64 range: an allow is kept when
	// the hash of its id is below it.
	threshold uint64

	written, dropped, sampledOut, failed atomic.Uint64
}

// New starts a Logger for cfg, or returns nil when cfg asks for no sink
// (neither console nor url). The credential of the service is read from
// cfg.CredentialsFile. Stop it to flush what is buffered.
func New(ctx context.Context, cfg config.DecisionLogs, opts Options) (*Logger, error) {
	if !cfg.Console && cfg.URL == "" {
		return nil, nil
	}
	if cfg.SampleRate < 0 || cfg.SampleRate > 1 || math.IsNaN(cfg.SampleRate) {
		return nil, errors.New("decision_logs.sample_rate: must be between 0 and 1")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinUploadDelay <= 0 {
		opts.MinUploadDelay = DefaultMinUploadDelay
	}
	if opts.MaxUploadDelay < opts.MinUploadDelay {
		opts.MaxUploadDelay = max(DefaultMaxUploadDelay, opts.MinUploadDelay)
	}
	if opts.BufferBytes <= 0 {
		opts.BufferBytes = DefaultBufferBytes
	}
	raw, err := managerConfig(cfg, opts.Labels)
	if err != nil {
		return nil, err
	}
	module, err := ast.ParseModuleWithOpts(maskModule, string(maskPolicy), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("decision_logs: mask policy: %w", err)
	}
	handler := opts.Logger.Handler()
	mgr, err := plugins.New(raw, decision.NewID(), inmem.New(),
		plugins.Logger(logging.NewLoggerFromSlogHandler(atLeast{handler.WithAttrs([]slog.Attr{slog.String("component", "decision_logs")}), slog.LevelWarn}, logging.Warn)),
		plugins.ConsoleLogger(logging.NewLoggerFromSlogHandler(handler, logging.Info)),
		plugins.InitFiles(loader.Result{Modules: map[string]*loader.RegoFile{
			maskModule: {Name: maskModule, Parsed: module, Raw: maskPolicy},
		}}),
	)
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	pcfg, err := pluginConfig(cfg, opts)
	if err != nil {
		mgr.Stop(ctx)
		return nil, err
	}
	parsed, err := logs.NewConfigBuilder().WithBytes(pcfg).WithServices(mgr.Services()).Parse()
	if err != nil {
		mgr.Stop(ctx)
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	plugin := logs.New(parsed, mgr)
	mgr.Register(logs.Name, plugin)
	if err := mgr.Start(ctx); err != nil {
		mgr.Stop(ctx)
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	l := &Logger{
		manager:    mgr,
		plugin:     plugin,
		log:        opts.Logger,
		console:    cfg.Console,
		remote:     cfg.URL != "",
		dropAllows: cfg.DropAllows,
		rate:       cfg.SampleRate,
		threshold:  threshold(cfg.SampleRate),
	}
	return l, nil
}

// managerConfig is the plugin manager's configuration: the remote service
// with its bearer credential, and the event labels.
func managerConfig(cfg config.DecisionLogs, labels map[string]string) ([]byte, error) {
	c := map[string]any{}
	if len(labels) > 0 {
		c["labels"] = labels
	}
	if cfg.URL != "" {
		base, _, err := splitURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		svc := map[string]any{"url": base, "response_header_timeout_seconds": 10}
		if cfg.CredentialsFile != "" {
			b, err := os.ReadFile(cfg.CredentialsFile)
			if err != nil {
				return nil, fmt.Errorf("decision_logs.credentials_file: %w", err)
			}
			cred := strings.TrimSpace(string(b))
			if cred == "" {
				return nil, errors.New("decision_logs.credentials_file: the file is empty")
			}
			svc["credentials"] = map[string]any{"bearer": map[string]any{"token": cred}}
		}
		c["services"] = map[string]any{service: svc}
	}
	return json.Marshal(c)
}

// pluginConfig is the decision-log plugin's configuration. Drops and
// sampling are not there: they happen in Go, before the plugin is called.
func pluginConfig(cfg config.DecisionLogs, opts Options) ([]byte, error) {
	c := map[string]any{"console": cfg.Console}
	if cfg.URL != "" {
		_, resource, err := splitURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		c["service"] = service
		c["resource"] = resource
		c["reporting"] = map[string]any{
			"min_delay_seconds":       int64(opts.MinUploadDelay / time.Second),
			"max_delay_seconds":       int64(max(opts.MaxUploadDelay, opts.MinUploadDelay) / time.Second),
			"buffer_size_limit_bytes": opts.BufferBytes,
		}
	}
	return json.Marshal(c)
}

// splitURL splits the service URL into the base the plugin's client knows
// and the resource events are POSTed to.
func splitURL(raw string) (base, resource string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", errors.New("decision_logs.url: must be an absolute http(s) URL")
	}
	if u.User != nil {
		return "", "", errors.New("decision_logs.url: must not carry credentials (use credentials_file)")
	}
	resource = u.EscapedPath()
	if resource == "" {
		resource = "/"
	}
	if u.RawQuery != "" {
		resource += "?" + u.RawQuery
	}
	return u.Scheme + "://" + u.Host, resource, nil
}

// Entry is one decision to log.
type Entry struct {
	// Decision is the answer; on error, the policy_error deny answered.
	Decision *decision.Decision
	// Err is why the policy could not decide, if it could not.
	Err error
	// Latency is the end-to-end time of the decision request.
	Latency time.Duration
	// RequestedBy is the caller's address (the gateway).
	RequestedBy string
	// Time is when the decision was asked for; zero means now.
	Time time.Time
}

// Log writes one decision, unless drop_allows or sampling leaves out an
// allow. Failures are logged, never returned: a decision is answered
// whether or not its log entry could be written.
func (l *Logger) Log(ctx context.Context, e Entry) {
	if l == nil || e.Decision == nil {
		return
	}
	dec := e.Decision
	if !l.keep(dec, e.Err) {
		return
	}
	info, err := l.info(e)
	if err == nil {
		err = l.plugin.Log(context.WithoutCancel(ctx), info)
	}
	if err != nil {
		l.failed.Add(1)
		l.log.Warn("decision log entry not written", "decision_id", dec.ID, "error", err)
		return
	}
	l.written.Add(1)
}

// keep says whether a decision is written: denies and errors always,
// allows unless dropped or sampled out.
func (l *Logger) keep(dec *decision.Decision, err error) bool {
	if err != nil || !dec.Allow {
		return true
	}
	if l.dropAllows {
		l.dropped.Add(1)
		return false
	}
	if !sampled(dec.ID, l.threshold) {
		l.sampledOut.Add(1)
		return false
	}
	return true
}

// threshold scales a sample rate in [0, 1] to the uint64 range.
func threshold(rate float64) uint64 {
	switch {
	case rate >= 1:
		return math.MaxUint64
	case rate <= 0:
		return 0
	}
	return uint64(rate * (1 << 64))
}

// sampled keeps the decisions whose id hashes below threshold: the same
// decision id is always kept or always left out, and random ids are kept
// in the configured proportion.
func sampled(id string, threshold uint64) bool {
	if threshold == math.MaxUint64 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64() < threshold
}

// info builds the plugin's view of one decision. This is the only place
// the policy input is converted to a Go value: the mask applies to that.
func (l *Logger) info(e Entry) (*server.Info, error) {
	dec := e.Decision
	ts := e.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	info := &server.Info{
		DecisionID: dec.ID,
		Path:       decisionPath,
		Timestamp:  ts.UTC(),
		RemoteAddr: e.RequestedBy,
		Custom:     custom(e),
	}
	if rev := dec.Policy.Revision; rev != "" {
		info.Bundles = map[string]server.BundleInfo{"policy": {Revision: rev}}
	}
	if dec.Input != nil {
		in, err := ast.JSON(dec.Input)
		if err != nil {
			return nil, fmt.Errorf("policy input: %w", err)
		}
		info.Input = &in
		info.InputAST = dec.Input
	}
	if e.Err != nil {
		info.Error = &evalError{Code: decision.CodePolicyError, Message: e.Err.Error()}
		return info, nil
	}
	var result any = dec
	if err := util.RoundTrip(&result); err != nil {
		return nil, fmt.Errorf("decision: %w", err)
	}
	info.Results = &result
	return info, nil
}

// custom holds the fields a reader filters on, flat: outcome, reason
// codes, grant type, client, the token's SHA-256 (never the token) and
// the latency.
func custom(e Entry) map[string]any {
	dec := e.Decision
	codes := make([]any, len(dec.Reasons))
	for i, r := range dec.Reasons {
		codes[i] = r.Code
	}
	c := map[string]any{
		"allow":      dec.Allow && e.Err == nil,
		"status":     dec.Status,
		"reasons":    codes,
		"grant_type": dec.GrantType,
		"latency_ns": e.Latency.Nanoseconds(),
	}
	if dec.Token != nil && dec.Token.ClientID != "" {
		c["client_id"] = dec.Token.ClientID
	}
	if dec.TokenHash != "" {
		c["token_sha256"] = dec.TokenHash
	}
	if dec.Reused {
		c["reused"] = true // answered from an earlier decision; input.now is that decision's
	}
	if dec.Policy.Module != "" {
		c["module"] = dec.Policy.Module
	}
	return c
}

// evalError is an error as the event's "error" member shows it.
type evalError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *evalError) Error() string { return e.Code + ": " + e.Message }

// Flush uploads what is buffered now (a no-op without a remote service).
func (l *Logger) Flush(ctx context.Context) error {
	if l == nil || !l.remote {
		return nil
	}
	return l.plugin.Trigger(ctx)
}

// Stop flushes buffered events to the remote service, within ctx's
// deadline, and stops the plugin.
func (l *Logger) Stop(ctx context.Context) {
	if l == nil {
		return
	}
	l.manager.Stop(ctx)
}

// Status is what /v1/status shows of decision logging.
type Status struct {
	Console    bool    `json:"console"`
	Remote     bool    `json:"remote"`
	DropAllows bool    `json:"drop_allows"`
	SampleRate float64 `json:"sample_rate"`
	// State is the plugin's state (OK, NOT_READY, ERROR).
	State string `json:"state"`
	// Buffered is how much waits for upload (bytes).
	Buffered int64 `json:"buffered_bytes"`
	// Written, Dropped (drop_allows), SampledOut and Failed count entries
	// since the start.
	Written    uint64 `json:"written"`
	Dropped    uint64 `json:"dropped"`
	SampledOut uint64 `json:"sampled_out"`
	Failed     uint64 `json:"failed"`
}

// Status describes decision logging; the zero Status when l is nil.
func (l *Logger) Status() Status {
	if l == nil {
		return Status{}
	}
	s := Status{
		Console: l.console, Remote: l.remote, DropAllows: l.dropAllows, SampleRate: l.rate,
		Written: l.written.Load(), Dropped: l.dropped.Load(), SampledOut: l.sampledOut.Load(), Failed: l.failed.Load(),
	}
	if ps := l.manager.PluginStatus()[logs.Name]; ps != nil {
		s.State = string(ps.State)
	}
	if l.remote {
		_, s.Buffered = l.plugin.BufferSize()
	}
	return s
}

// atLeast passes on records of level min and above: the plugin's routine
// messages ("Logs uploaded successfully.") stay out of the process log.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.Handler.Enabled(ctx, level)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}
