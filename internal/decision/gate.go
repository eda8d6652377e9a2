package decision

import (
	"context"
	"sync/atomic"
)

// gate bounds the decisions that work at once on what comes before the
// policy: the token, the DPoP proof and its spend, a kept decision's
// checks and answer. The others wait their turn, in order, without
// running, within the decision deadline.
//
// Without it every request in flight is runnable on a saturated replica,
// and a goroutine back from a blocking system call (a store commit's
// fsync, which DPoP decisions wait for) is queued behind all of them by
// the Go scheduler: on one core under load, commits then took up to
// 160 ms and DPoP decisions missed their deadline. With a few running,
// it resumes within a few of their turns.
type gate struct {
	slots   chan struct{}
	waiting atomic.Int64
}

func newGate(n int) *gate { return &gate{slots: make(chan struct{}, n)} }

// enter takes a slot, waiting in order until one is free or ctx ends (its
// error then).
func (g *gate) enter(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave gives back a slot taken by enter.
func (g *gate) leave() { <-g.slots }
