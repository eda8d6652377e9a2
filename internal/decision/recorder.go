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
// decision path, into a bounded queue: a full queue drops sightings
// (counted) rather than slow a decision down; a fingerprint is bookkeeping,
// not a revocation.
//
// With a store that folds many sightings in one transaction (bbolt), one
// writer drains the queue in batches: a batch is written once it holds
// maxSightingBatch sightings or sightingWindow after its first, in one
// fsync'ed commit. Sightings of tokens never seen before arrive at the
// request rate, and a commit per sighting would spend more CPU on fsync than
// on the decisions. A crash loses at most the sightings still queued or in
// their window. Otherwise (Redis) a few writers write one sighting each.
//
// Either way the write comes after the answer. So that the next decision
// sees the sighting all the same (a token replayed at once from another
// network), it is first noted in the store's pending sightings, which
// LastSeen reads, and let go of once its write has returned.
type recorder struct {
	ch      chan sighting
	state   State
	noter   sightingNoter
	batch   fingerprintBatcher
	dropped atomic.Int64
	failed  atomic.Int64
	logger  *slog.Logger
}

// fingerprintBatcher is a store that folds many sightings in one write.
type fingerprintBatcher interface {
	RecordFingerprints(ctx context.Context, ss []store.TokenSighting) error
}

// sightingNoter is a store that makes a sighting visible before it is
// written (store.Fingerprints.NoteSighting).
type sightingNoter interface {
	NoteSighting(tokenHash string, s store.Sighting) (release func(), err error)
}

// Batching of sightings (see recorder).
const (
	sightingWindow   = 50 * time.Millisecond
	maxSightingBatch = 1024
)

type sighting struct {
	hash string
	s    store.Sighting
	// release lets go of the noted sighting once its write has returned.
	release func()
}

func newRecorder(ctx context.Context, state State, queue, writers int, logger *slog.Logger) *recorder {
	if queue <= 0 {
		queue = 4096
	}
	if writers <= 0 {
		writers = 4
	}
	r := &recorder{ch: make(chan sighting, queue), state: state, logger: logger}
	r.noter, _ = state.(sightingNoter)
	if b, ok := state.(fingerprintBatcher); ok {
		r.batch = b
		go r.writeBatches(ctx)
		return r
	}
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
			r.writeOne(ctx, s)
		}
	}
}

func (r *recorder) writeOne(ctx context.Context, s sighting) {
	defer s.release()
	if err := r.state.RecordFingerprint(ctx, s.hash, s.s); err != nil && ctx.Err() == nil {
		if r.failed.Add(1) == 1 {
			r.logger.Warn("recording a fingerprint failed", "error", err)
		}
	}
}

// writeBatches drains the queue a batch at a time until ctx ends.
func (r *recorder) writeBatches(ctx context.Context) {
	batch := make([]sighting, 0, maxSightingBatch)
	timer := time.NewTimer(sightingWindow)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-r.ch:
			batch = append(batch[:0], s)
		}
		timer.Reset(sightingWindow)
	fill:
		for len(batch) < maxSightingBatch {
			select {
			case <-ctx.Done():
				return
			case s := <-r.ch:
				batch = append(batch, s)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		r.writeBatch(ctx, batch)
	}
}

// writeBatch writes a batch in one transaction. The batch is all or
// nothing, so when it fails (a token expired while queued, say) its
// sightings are written one by one: one bad sighting loses only itself.
// Every sighting of the batch is released once its write has returned.
func (r *recorder) writeBatch(ctx context.Context, batch []sighting) {
	now := time.Now()
	live := make([]store.TokenSighting, 0, len(batch))
	for _, s := range batch {
		if s.s.ExpiresAt.After(now) {
			live = append(live, store.TokenSighting{TokenHash: s.hash, Sighting: s.s})
		}
	}
	defer func() {
		for _, s := range batch {
			s.release()
		}
	}()
	if len(live) == 0 {
		return
	}
	if err := r.batch.RecordFingerprints(ctx, live); err == nil || ctx.Err() != nil {
		return
	}
	for _, s := range live {
		r.writeOne(ctx, sighting{hash: s.TokenHash, s: s.Sighting, release: func() {}})
	}
}

// record notes a sighting, so that LastSeen finds it from now on, and
// queues it to be written. A full queue drops it; a full set of pending
// sightings only leaves it unnoted until written.
func (r *recorder) record(hash string, s store.Sighting) {
	release := func() {}
	if r.noter != nil {
		if rel, err := r.noter.NoteSighting(hash, s); err == nil {
			release = rel
		} else if r.failed.Add(1) == 1 {
			r.logger.Warn("noting a sighting failed", "error", err)
		}
	}
	select {
	case r.ch <- sighting{hash: hash, s: s, release: release}:
	default:
		release()
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
	// A token whose exp lies past what the store holds is fingerprinted
	// until then, not left unfingerprinted.
	e.recorder.record(tok.Hash, store.Sighting{At: now, IP: req.RemoteIP, UserAgent: ua, ExpiresAt: store.ClampExpiry(tok.ExpiresAt)})
}
