// Package decisionlog writes one JSON line per decision, with the member
// names of OPA's decision-log events (decision_id, path, input, result,
// timestamp, metrics, labels, ...) so that receivers of OPA's decision
// logs keep working, to the process log (console) and/or a remote
// decision-log service (gzip'ed JSON batches, OPA's decision-log API),
// after what the system.log mask policy (mask.rego, applied in Go: see
// mask.go) erases from the input.
//
// The request path only hands a decision over: a send on a bounded queue,
// dropped and counted when the queue is full, never waiting. One goroutine
// encodes the queued decisions and writes them in batches.
//
// Which decisions are written is decided before that: denies and errors
// always; allows unless drop_allows, and then a sample_rate fraction of
// them, chosen by decision id.
package decisionlog

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/version"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

// maskPolicy is the mask as policy: the Go mask (mask.go) is tested
// against it, and `opa test` runs its tests.
//
//go:embed mask.rego
var maskPolicy []byte

// decisionPath is the path events name (the decision the policy makes).
var decisionPath = strings.ReplaceAll(strings.TrimPrefix(policy.Query, "data."), ".", "/")

// Defaults of Options.
const (
	DefaultMinUploadDelay = 5 * time.Second
	DefaultMaxUploadDelay = 15 * time.Second
	// DefaultBufferBytes bounds the events waiting for upload; past it the
	// oldest are dropped rather than memory growing.
	DefaultBufferBytes = 64 << 20
	// batchBytes is how much console output is gathered into one write.
	batchBytes = 64 << 10
	// writeEvery is how often the queue is written out.
	writeEvery = 10 * time.Millisecond
	// yieldEvery: the writer yields the processor after this many entries
	// (about 8 µs each).
	yieldEvery = 8
)

// Options tune a Logger. Zero fields take their defaults.
type Options struct {
	// Logger is the process log: the logger's own warnings (failed
	// uploads) go there.
	Logger *slog.Logger
	// Console is where console lines go (the process log's destination;
	// share a writer that serialises writes with the process log's
	// handler). Default os.Stderr.
	Console io.Writer
	// Format is the process log's format, json (default) or text: a text
	// console line carries the event's JSON as its event attribute.
	Format string
	// MinUploadDelay and MaxUploadDelay bound the pause between two
	// uploads to the remote service.
	MinUploadDelay, MaxUploadDelay time.Duration
	// BufferBytes bounds the events waiting for upload.
	BufferBytes int64
	// Labels are added to every event, besides the id and OPA's version.
	Labels map[string]string
}

// record is one decision on its way to the sinks.
type record struct {
	dec     *decision.Decision
	err     error
	latency time.Duration
	by      string
	ts      time.Time
	shadow  *decision.ShadowAnswer
}

// Logger writes decision-log events. It is safe for concurrent use; a nil
// *Logger logs nothing.
type Logger struct {
	log        *slog.Logger
	console    io.Writer
	text       bool
	remote     *uploader
	dropAllows bool
	rate       float64
	// threshold is rate scaled to the uint64 range: an allow is kept when
	// the hash of its id is below it.
	threshold uint64

	queue   chan record
	flushes chan chan struct{}
	quit    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
	stop    sync.Once
	stopped atomic.Bool

	written, dropped, sampledOut, failed atomic.Uint64
	// queueFull and bufferFull count entries lost to a full queue and to
	// a full upload buffer.
	queueFull, bufferFull atomic.Uint64
}

// New starts a Logger for cfg, or returns nil when cfg asks for no sink
// (neither console nor url). The credential of the service is read from
// cfg.CredentialsFile. Stop it to write and upload what is queued.
func New(ctx context.Context, cfg config.DecisionLogs, opts Options) (*Logger, error) {
	if !cfg.Console && cfg.URL == "" {
		return nil, nil
	}
	if cfg.SampleRate < 0 || cfg.SampleRate > 1 || math.IsNaN(cfg.SampleRate) {
		return nil, errors.New("decision_logs.sample_rate: must be between 0 and 1")
	}
	queue := cfg.Queue
	if queue <= 0 {
		queue = config.DefaultDecisionLogQueue
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Console == nil {
		opts.Console = os.Stderr
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
	l := &Logger{
		log:        opts.Logger.With("component", "decision_logs"),
		text:       opts.Format == "text",
		dropAllows: cfg.DropAllows,
		rate:       cfg.SampleRate,
		threshold:  threshold(cfg.SampleRate),
		queue:      make(chan record, queue),
		flushes:    make(chan chan struct{}),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if cfg.Console {
		l.console = opts.Console
	}
	if cfg.URL != "" {
		target, err := serviceURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		var cred string
		if cfg.CredentialsFile != "" {
			b, err := os.ReadFile(cfg.CredentialsFile)
			if err != nil {
				return nil, fmt.Errorf("decision_logs.credentials_file: %w", err)
			}
			if cred = strings.TrimSpace(string(b)); cred == "" {
				return nil, errors.New("decision_logs.credentials_file: the file is empty")
			}
		}
		l.remote = newUploader(target, cred, opts.MinUploadDelay, opts.MaxUploadDelay, opts.BufferBytes, &l.bufferFull, l.log)
	}
	labels := map[string]string{}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	labels["id"] = decision.NewID()
	labels["version"] = version.Version
	enc := newEncoder(labels)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	if l.remote != nil {
		go l.remote.run(runCtx)
	}
	go l.run(enc)
	return l, nil
}

// serviceURL checks the service URL: events are POSTed to it.
func serviceURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("decision_logs.url: must be an absolute http(s) URL")
	}
	if u.User != nil {
		return "", errors.New("decision_logs.url: must not carry credentials (use credentials_file)")
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

// Entry is one decision to log.
type Entry struct {
	// Decision is the answer; on error, the policy_error deny answered.
	// It is read after Log returns, by the logger's goroutine: the caller
	// must not change it.
	Decision *decision.Decision
	// Err is why the policy could not decide, if it could not.
	Err error
	// Latency is the end-to-end time of the decision request.
	Latency time.Duration
	// RequestedBy is the caller's address (the gateway).
	RequestedBy string
	// Time is when the decision was asked for; zero means now.
	Time time.Time
	// Shadow, when set, makes the entry a shadow disagreement: the shadow
	// policy's answer to Decision's input, written beside the answer given
	// (custom.shadow), under the message "Shadow Disagreement". It is
	// always written, whatever drop_allows and sample_rate say.
	Shadow *decision.ShadowAnswer
}

// Log hands one decision to the logger, unless drop_allows or sampling
// leaves out an allow. It never waits: when the queue is full the entry
// is dropped and counted (pdp_decision_logs_dropped_total{reason=
// "queue_full"}). A decision is answered whether or not its entry is
// written.
func (l *Logger) Log(_ context.Context, e Entry) {
	if l == nil || e.Decision == nil {
		return
	}
	if e.Shadow == nil && !l.keep(e.Decision, e.Err) {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	select {
	case l.queue <- record{dec: e.Decision, err: e.Err, latency: e.Latency, by: e.RequestedBy, ts: e.Time, shadow: e.Shadow}:
	default:
		l.queueFull.Add(1)
	}
}

// run encodes queued entries and writes them, a batch at a time, until
// Stop; then it writes what is still queued.
func (l *Logger) run(enc *encoder) {
	defer close(l.done)
	var batch, ev []byte
	write := func(r record) {
		var err error
		ev, err = enc.appendEvent(ev[:0], r)
		if err != nil {
			l.failed.Add(1)
			l.log.Warn("decision log entry not written", "decision_id", r.dec.ID, "error", err)
			return
		}
		if l.console != nil {
			batch = l.appendConsole(batch, ev, r)
		}
		if l.remote != nil {
			l.remote.add(append([]byte(nil), ev...))
		}
		l.written.Add(1)
	}
	emit := func() {
		if len(batch) > 0 {
			if _, err := l.console.Write(batch); err != nil {
				l.failed.Add(1)
			}
			batch = batch[:0]
		}
		if cap(batch) > 4*batchBytes {
			batch = nil
		}
	}
	// drain writes what is queued now, yielding the processor every few
	// entries so that the decisions waiting for it are not held up by a
	// long batch (with one CPU, the logger and the requests share it).
	drain := func() {
		for n := 1; ; n++ {
			select {
			case r := <-l.queue:
				write(r)
				if len(batch) >= batchBytes {
					emit()
				}
				if n%yieldEvery == 0 {
					runtime.Gosched()
				}
			default:
				emit()
				return
			}
		}
	}
	// The goroutine wakes on a tick rather than per entry: a hand-off is
	// then a send to a buffer, with no goroutine to make runnable (which
	// would also run it ahead of the requests waiting for the processor).
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			drain()
		case ack := <-l.flushes:
			drain()
			close(ack)
		case <-l.quit:
			drain()
			return
		}
	}
}

// appendConsole appends one console line: the process log's time, level
// and message, then the event's members (json), or the event as its event
// attribute (text).
func (l *Logger) appendConsole(b, ev []byte, r record) []byte {
	now := time.Now()
	msg := "Decision Log"
	if r.shadow != nil {
		msg = ShadowMessage
	}
	if l.text {
		b = append(b, "time="...)
		b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
		b = append(b, ` level=INFO msg="`+msg+`" decision_id=`...)
		b = append(b, r.dec.ID...)
		b = append(b, " event="...)
		b = append(b, ev...)
		return append(b, '\n')
	}
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+msg+`",`...)
	b = append(b, ev[1:]...)
	return append(b, '\n')
}

// ShadowMessage is the console message of a shadow disagreement: a reader
// of decision logs tells it from the decision's own entry ("Decision Log"),
// which has the same decision_id, by it or by custom.shadow.
const ShadowMessage = "Shadow Disagreement"

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

// Flush writes what is queued now to the console and uploads what is
// buffered to the remote service.
func (l *Logger) Flush(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if !l.stopped.Load() {
		ack := make(chan struct{})
		select {
		case l.flushes <- ack:
		case <-l.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-ack:
		case <-l.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if l.remote == nil {
		return nil
	}
	return l.remote.upload(ctx)
}

// Stop writes what is queued, uploads what is buffered within ctx's
// deadline, and stops the logger. Entries logged afterwards are dropped.
func (l *Logger) Stop(ctx context.Context) {
	if l == nil {
		return
	}
	l.stop.Do(func() {
		l.stopped.Store(true)
		close(l.quit)
		select {
		case <-l.done:
		case <-ctx.Done():
		}
		l.cancel()
		if l.remote != nil {
			if err := l.remote.upload(ctx); err != nil {
				l.log.Warn("decision logs not uploaded before the stop", "error", err, "buffered_bytes", l.remote.buffered())
			}
		}
	})
}

// Status is what /v1/status shows of decision logging.
type Status struct {
	Console    bool    `json:"console"`
	Remote     bool    `json:"remote"`
	DropAllows bool    `json:"drop_allows"`
	SampleRate float64 `json:"sample_rate"`
	// State is OK, or ERROR while uploads to the remote service fail.
	State string `json:"state"`
	// Buffered is how much waits for upload (bytes).
	Buffered int64 `json:"buffered_bytes"`
	// Written, Dropped (drop_allows), SampledOut and Failed count entries
	// since the start.
	Written    uint64 `json:"written"`
	Dropped    uint64 `json:"dropped"`
	SampledOut uint64 `json:"sampled_out"`
	Failed     uint64 `json:"failed"`
	// QueueFull and BufferFull count entries lost to a full hand-off
	// queue and to a full upload buffer.
	QueueFull  uint64 `json:"queue_full"`
	BufferFull uint64 `json:"buffer_full"`
}

// Status describes decision logging; the zero Status when l is nil.
func (l *Logger) Status() Status {
	if l == nil {
		return Status{}
	}
	s := Status{
		Console: l.console != nil, Remote: l.remote != nil, DropAllows: l.dropAllows, SampleRate: l.rate,
		State:   "OK",
		Written: l.written.Load(), Dropped: l.dropped.Load(), SampledOut: l.sampledOut.Load(), Failed: l.failed.Load(),
		QueueFull: l.queueFull.Load(), BufferFull: l.bufferFull.Load(),
	}
	if l.remote != nil {
		s.Buffered = l.remote.buffered()
		if l.remote.failing.Load() {
			s.State = "ERROR"
		}
	}
	return s
}

// Collector is pdp_decision_logs_dropped_total{reason}: entries dropped
// because the queue was full (queue_full) or the upload buffer was
// (buffer_full). Zero for a nil Logger.
func (l *Logger) Collector() prometheus.Collector { return droppedCollector{l} }

var droppedDesc = prometheus.NewDesc("pdp_decision_logs_dropped_total",
	"Decision-log entries dropped: the hand-off queue was full (queue_full) or the upload buffer was (buffer_full, the oldest go).",
	[]string{"reason"}, nil)

type droppedCollector struct{ l *Logger }

func (c droppedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- droppedDesc }

func (c droppedCollector) Collect(ch chan<- prometheus.Metric) {
	var queue, buffer uint64
	if c.l != nil {
		queue, buffer = c.l.queueFull.Load(), c.l.bufferFull.Load()
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(queue), "queue_full")
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(buffer), "buffer_full")
}
