package decision

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
)

// Shadow evaluation.
//
// A shadow policy (policy.shadow) is evaluated on a sample of live
// decisions once they have been answered, with the very input the active
// policy was evaluated with, to see what it would change. It never changes
// an answer and never writes state: the pdp.* built-ins only read the
// store, and what a decision writes (sightings, refresh-token families,
// DPoP jti, the revocations a policy asks for as effects) is written by Go
// for the active policy alone; the shadow's effects are ignored.
//
// The hand-off never waits: a sampled decision takes one of
// max_concurrency evaluation slots, or, when all are busy, is skipped and
// counted. Only decisions the active policy evaluated are offered: a
// decision answered from a kept one (reuse.go) has no fresh input, and the
// evaluated decision it was kept from was offered already; a decision that
// failed before or in the evaluation has no result to compare.
type Shadow struct {
	ctx       context.Context
	eval      ShadowEvaluator
	slots     chan struct{}
	threshold float64
	timeout   time.Duration
	observer  ShadowObserver
	disagreed func(Disagreement)
	describe  func() (source, revision, lastError string)
	logger    *slog.Logger

	agreed, disagreements, skipped, failed atomic.Int64
	lastErr                                atomic.Pointer[string]
	errWarn                                warnLimit
	// wg counts the evaluations under way (for tests and shutdown).
	wg sync.WaitGroup
}

// ShadowEvaluator evaluates the shadow policy; a second *policy.Engine is
// the one in use.
type ShadowEvaluator interface {
	Eval(ctx context.Context, input ast.Value, now time.Time) (policy.Result, string, error)
}

// ShadowObserver counts shadow evaluations (for metrics). Its methods must
// be cheap and safe for concurrent use.
type ShadowObserver interface {
	// ObserveShadow counts one sampled decision by result: agree,
	// disagree, skipped or error.
	ObserveShadow(result string)
	// ObserveShadowDisagreement counts one disagreement by both outcomes
	// and the reason code it is about.
	ObserveShadowDisagreement(activeAllow, shadowAllow bool, reason string)
}

// Shadow results.
const (
	ShadowAgree    = "agree"
	ShadowDisagree = "disagree"
	ShadowSkipped  = "skipped"
	ShadowError    = "error"
)

// ShadowAnswer is what the shadow policy answered for a decision.
type ShadowAnswer struct {
	Allow    bool            `json:"allow"`
	Status   int             `json:"status"`
	Reasons  []policy.Reason `json:"reasons"`
	Revision string          `json:"revision"`
	Module   string          `json:"module,omitempty"`
}

// Disagreement is a decision the shadow policy answered otherwise: another
// outcome, or other reason codes.
type Disagreement struct {
	// Decision is the answer given (by the active policy), with its
	// decision_id and input. It must not be changed.
	Decision *Decision
	// Shadow is the shadow policy's answer.
	Shadow ShadowAnswer
	// Time is when the decision was made.
	Time time.Time
	// Reason is the reason code the disagreement is about: the shadow's
	// first when it denies, else the active policy's first.
	Reason string
}

// ShadowStatus is the shadow part of GET /v1/status.
type ShadowStatus struct {
	// Source names the shadow policy's source (the directory, or the
	// bundles' names).
	Source string `json:"source"`
	// Revision is the revision of the shadow version evaluated now; empty
	// while none could be loaded.
	Revision string `json:"revision"`
	// Decisions counts the decisions the shadow evaluated and compared,
	// Disagreements those it answered otherwise; both since the start.
	Decisions     int64 `json:"decisions"`
	Disagreements int64 `json:"disagreements"`
	// LastError is why the shadow source's last version was refused, while
	// it is, else the last failed shadow evaluation; empty when none.
	LastError string `json:"last_error"`
}

// ShadowOptions configure a Shadow.
type ShadowOptions struct {
	// SampleRate is the fraction of evaluated decisions offered (0 to 1).
	SampleRate float64
	// MaxConcurrency bounds the evaluations that run at once (at least 1).
	MaxConcurrency int
	// Timeout bounds one evaluation (the decision timeout).
	Timeout time.Duration
	// Observer, when set, counts every sampled decision.
	Observer ShadowObserver
	// Disagreed, when set, is called with every disagreement (to log it),
	// on the evaluating goroutine.
	Disagreed func(Disagreement)
	// Describe, when set, names the shadow's source, its revision and the
	// source's current failure, for Status.
	Describe func() (source, revision, lastError string)
	Logger   *slog.Logger
}

// NewShadow returns the shadow evaluation of eval. Evaluations under way
// are canceled when ctx ends.
func NewShadow(ctx context.Context, eval ShadowEvaluator, opts ShadowOptions) *Shadow {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	return &Shadow{
		ctx: ctx, eval: eval, slots: make(chan struct{}, max(opts.MaxConcurrency, 1)),
		threshold: opts.SampleRate, timeout: opts.Timeout, observer: opts.Observer,
		disagreed: opts.Disagreed, describe: opts.Describe, logger: opts.Logger,
	}
}

// Offer hands an answered decision to the shadow policy, without waiting:
// unless it is left out by sampling, it is evaluated on a free slot, or
// skipped (counted) when none is free. A decision the active policy did not
// evaluate (reused, failed) is not offered. d must not change afterwards.
func (s *Shadow) Offer(d *Decision) {
	if s == nil || d == nil || d.evaluatedAt.IsZero() || d.Input == nil || d.Reused {
		return
	}
	if s.threshold < 1 && !(rand.Float64() < s.threshold) {
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.skipped.Add(1)
		s.observe(ShadowSkipped)
		return
	}
	s.wg.Add(1)
	go func() {
		defer func() {
			<-s.slots
			s.wg.Done()
		}()
		s.evaluate(d)
	}()
}

// evaluate evaluates the shadow policy on d's input and compares.
func (s *Shadow) evaluate(d *Decision) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	ctx, _ = store.WithNotes(ctx)
	res, rev, err := s.eval.Eval(ctx, d.Input, d.evaluatedAt)
	if err != nil {
		if s.ctx.Err() != nil {
			return // shutting down
		}
		total := s.failed.Add(1)
		msg := err.Error()
		if errors.Is(err, policy.ErrNoPolicy) {
			msg = "no shadow policy is active"
		}
		s.lastErr.Store(&msg)
		s.observe(ShadowError)
		if ok, since := s.errWarn.due(time.Now(), total); ok {
			s.logger.Warn("shadow policy evaluation failed (the answer was not affected)", "decision_id", d.ID,
				"error", err, "failed_since_last_warning", since, "failed_total", total)
		}
		return
	}
	if sameAnswer(d, res) {
		s.agreed.Add(1)
		s.observe(ShadowAgree)
		return
	}
	s.disagreements.Add(1)
	ans := ShadowAnswer{Allow: res.Allow, Status: res.Status, Reasons: nonNil(res.Reasons), Revision: rev, Module: res.Module}
	reason := reasonNone
	switch {
	case !res.Allow && len(res.Reasons) > 0:
		reason = res.Reasons[0].Code
	case len(d.Reasons) > 0:
		reason = d.Reasons[0].Code
	}
	s.observe(ShadowDisagree)
	if s.observer != nil {
		s.observer.ObserveShadowDisagreement(d.Allow, res.Allow, reason)
	}
	if s.disagreed != nil {
		s.disagreed(Disagreement{Decision: d, Shadow: ans, Time: d.evaluatedAt, Reason: reason})
	}
}

// reasonNone is the reason of a disagreement where neither side gave one.
const reasonNone = "none"

func (s *Shadow) observe(result string) {
	if s.observer != nil {
		s.observer.ObserveShadow(result)
	}
}

// sameAnswer reports whether the shadow's result agrees with the decision:
// the same outcome and the same set of reason codes (warnings, headers and
// statuses are not compared).
func sameAnswer(d *Decision, res policy.Result) bool {
	if d.Allow != res.Allow || len(d.Reasons) != len(res.Reasons) {
		return false
	}
	codes := func(rs []policy.Reason) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Code
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(codes(d.Reasons), codes(res.Reasons))
}

// Status reports the shadow's source and counts; nil on a nil Shadow (no
// shadow policy configured).
func (s *Shadow) Status() *ShadowStatus {
	if s == nil {
		return nil
	}
	st := &ShadowStatus{Disagreements: s.disagreements.Load()}
	st.Decisions = s.agreed.Load() + st.Disagreements
	if s.describe != nil {
		st.Source, st.Revision, st.LastError = s.describe()
	}
	if p := s.lastErr.Load(); st.LastError == "" && p != nil {
		st.LastError = *p
	}
	return st
}

// Wait waits for the evaluations under way.
func (s *Shadow) Wait() {
	if s != nil {
		s.wg.Wait()
	}
}
