package decision

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// recorder writes bearer-token sightings after allowed decisions, off the
// decision path: a bounded queue drained by a few writers whose commits
// share fsyncs. A full queue drops sightings (counted) rather than slow a
// decision down; a fingerprint is bookkeeping, not a revocation.
type recorder struct {
	ch      chan sighting
	state   State
	dropped atomic.Int64
	failed  atomic.Int64
	logger  *slog.Logger
}

type sighting struct {
	hash string
	s    store.Sighting
}

func newRecorder(ctx context.Context, state State, queue, writers int, logger *slog.Logger) *recorder {
	if queue <= 0 {
		queue = 4096
	}
	if writers <= 0 {
		writers = 4
	}
	r := &recorder{ch: make(chan sighting, queue), state: state, logger: logger}
	for range writers {
		go r.write(ctx)
	}
	return r
}

func (r *recorder) write(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-r.ch:
			if err := r.state.RecordFingerprint(ctx, s.hash, s.s); err != nil && ctx.Err() == nil {
				if r.failed.Add(1) == 1 {
					r.logger.Warn("recording a fingerprint failed", "error", err)
				}
			}
		}
	}
}

func (r *recorder) record(hash string, s store.Sighting) {
	select {
	case r.ch <- sighting{hash: hash, s: s}:
	default:
		r.dropped.Add(1)
	}
}

// codeReplaySuspected is the fingerprint guardrail's reason code.
const codeReplaySuspected = "token_replay_suspected"

// recordSighting queues the fingerprint of an allowed bearer token. A
// sighting the fingerprint guardrail only warned about (monitor mode) is not
// recorded: the first fingerprint stays the baseline.
func (e *Engine) recordSighting(req *Request, tok *token.Token, warnings []policy.Reason, now time.Time) {
	if e.recorder == nil || tok.Confirmation.JKT != "" || tok.Confirmation.X5TS256 != "" {
		return
	}
	if tok.ExpiresAt.IsZero() || !tok.ExpiresAt.After(now) {
		return
	}
	for _, w := range warnings {
		if w.Code == codeReplaySuspected {
			return
		}
	}
	var ua string
	if v := req.Headers["user-agent"]; len(v) > 0 {
		ua = v[0]
	}
	e.recorder.record(tok.Hash, store.Sighting{At: now, IP: req.RemoteIP, UserAgent: ua, ExpiresAt: tok.ExpiresAt})
}
