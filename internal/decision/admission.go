package decision

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// CodeOverloaded is the reason of a deny answered because the replica had
// no room to evaluate the policy in time: more evaluations were running and
// waiting than admission allows, the wait in the queue ran out, or the
// decision deadline passed. Status 503 with Retry-After; the request may be
// retried, here or on another replica. It is never a policy_error.
const CodeOverloaded = "overloaded"

// CodeCanceled is the reason of a decision whose caller went away (the
// request's context was canceled, or its own deadline passed) before it
// was made. Nobody reads the answer; it is counted, not treated as an
// error.
const CodeCanceled = "canceled"

// RetryAfter is the Retry-After (seconds) of an overloaded deny.
const RetryAfter = "1"

// errDecisionDeadline is the cause of a decision context whose deadline
// (Options.Timeout) passed, as opposed to a caller that went away.
var errDecisionDeadline = errors.New("decision deadline exceeded")

// errOverloaded is returned by admission when there is no room.
var errOverloaded = errors.New("decision: overloaded")

// admission bounds the policy evaluations that run at once, and the ones
// that wait for a turn. A decision answered from a kept one never waits
// here: only evaluations do, so that a warm replica's cheap answers are not
// shed behind cold ones.
type admission struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	maxWait time.Duration
}

func newAdmission(concurrent, queue int, maxWait time.Duration) *admission {
	return &admission{slots: make(chan struct{}, concurrent), queue: int64(queue), maxWait: maxWait}
}

// acquire takes an evaluation slot, waiting for at most maxWait in a queue
// of at most queue others. It returns errOverloaded when the queue is full
// or the wait ran out, and the context's error when ctx ended first.
func (a *admission) acquire(ctx context.Context) error {
	select {
	case a.slots <- struct{}{}:
		return nil
	default:
	}
	if a.waiting.Add(1) > a.queue {
		a.waiting.Add(-1)
		return errOverloaded
	}
	defer a.waiting.Add(-1)
	timer := time.NewTimer(a.maxWait)
	defer timer.Stop()
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return errOverloaded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives back a slot taken by acquire.
func (a *admission) release() { <-a.slots }

// AdmissionStats is what admission holds now.
type AdmissionStats struct {
	// Running is the number of evaluations running, Waiting the number
	// queued for a slot.
	Running, Waiting int
}

// AdmissionStats reports the evaluations running and waiting; zero when
// admission is off.
func (e *Engine) AdmissionStats() AdmissionStats {
	if e.admission == nil {
		return AdmissionStats{}
	}
	return AdmissionStats{Running: len(e.admission.slots), Waiting: int(e.admission.waiting.Load())}
}

// interrupted answers a decision whose context ended or that found no room:
// overloaded (503, Retry-After) when the decision deadline passed or
// admission refused it, canceled when the caller went away. It reports
// false when neither is the case, and the error is the policy's.
func (e *Engine) interrupted(ctx context.Context, d *Decision, err error) bool {
	switch {
	case errors.Is(err, errOverloaded),
		ctx.Err() != nil && errors.Is(context.Cause(ctx), errDecisionDeadline):
		deny(d, 503, CodeOverloaded, "the decision point is overloaded; retry later")
		d.Headers = map[string]string{"Retry-After": RetryAfter}
		return true
	case ctx.Err() != nil:
		deny(d, 503, CodeCanceled, "the caller went away before the decision was made")
		return true
	}
	return false
}
