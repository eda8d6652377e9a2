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
//
// Lost sightings are not silent: dropped ones (a full queue) and failed
// writes are counted (SightingStats, pdp_sightings_*_total, /v1/status)
// and logged at WARN at most once a minute each while they happen.
type recorder struct {
	ch      chan sighting
	state   State
	noter   sightingNoter
	batch   fingerprintBatcher
	dropped atomic.Int64
	failed  atomic.Int64
	unnoted atomic.Int64
	logger  *slog.Logger
	now     func() time.Time
	// dropWarn, failWarn and noteWarn limit the warnings.
	dropWarn, failWarn, noteWarn warnLimit
}

// warnEvery is how often, at most, the recorder warns of each kind of
// lost sighting while they happen.
const warnEvery = time.Minute

// warnLimit lets a warning through at most once per warnEvery; it
// remembers the count at the last warning, to say how many since.
type warnLimit struct {
	last  atomic.Int64 // unix nanoseconds of the last warning; 0: none yet
	count atomic.Int64 // the counter's value at the last warning
}

// due reports whether a warning may be logged now, and how many happened
// since the last one (total is the counter's value now).
func (w *warnLimit) due(now time.Time, total int64) (bool, int64) {
	last := w.last.Load()
	if last != 0 && now.UnixNano()-last < int64(warnEvery) {
		return false, 0
	}
	if !w.last.CompareAndSwap(last, now.UnixNano()) {
		return false, 0
	}
	return true, total - w.count.Swap(total)
}

// SightingStats count the fingerprint sightings lost or held up.
type SightingStats struct {
	// Queued sightings wait to be written now.
	Queued int `json:"queued"`
	// Dropped sightings found the write queue full and were never
	// written; Failed ones were refused by the store; Unnoted ones could
	// not be made visible before their write (too many pending) and were
	// queued all the same. All since the start.
	Dropped int64 `json:"dropped"`
	Failed  int64 `json:"failed"`
	Unnoted int64 `json:"unnoted"`
}

// SightingStats reports the sightings queued and lost; zero without a
// state store.
func (e *Engine) SightingStats() SightingStats {
	if e.recorder == nil {
		return SightingStats{}
	}
	r := e.recorder
	return SightingStats{Queued: len(r.ch), Dropped: r.dropped.Load(), Failed: r.failed.Load(), Unnoted: r.unnoted.Load()}
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
	r := &recorder{ch: make(chan sighting, queue), state: state, logger: logger, now: time.Now}
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
		total := r.failed.Add(1)
		if ok, since := r.failWarn.due(r.now(), total); ok {
			r.logger.Warn("fingerprint sightings failed to be written: the fingerprint guardrail misses them",
				"error", err, "failed_since_last_warning", since, "failed_total", total)
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
		} else {
			total := r.unnoted.Add(1)
			if ok, since := r.noteWarn.due(r.now(), total); ok {
				r.logger.Warn("fingerprint sightings could not be noted before their write", "error", err,
					"unnoted_since_last_warning", since, "unnoted_total", total)
			}
		}
	}
	select {
	case r.ch <- sighting{hash: hash, s: s, release: release}:
	default:
		release()
		total := r.dropped.Add(1)
		if ok, since := r.dropWarn.due(r.now(), total); ok {
			r.logger.Warn("fingerprint sightings dropped: their write queue is full (the store is slower than the request rate: check the store, or raise fingerprints.queue)",
				"dropped_since_last_warning", since, "dropped_total", total, "queue", cap(r.ch))
		}
	}
}

// codeReplaySuspected is the fingerprint guardrail's reason code.
const codeReplaySuspected = "token_replay_suspected"

// recordSighting queues the fingerprint of an allowed bearer token. A
// sighting the fingerprint guardrail only warned about (monitor mode) is not
// recorded: the first fingerprint stays the baseline.
func (e *Engine) recordSighting(req *Request, tok *token.Token, warnings []policy.Reason, now time.Time, r *run) {
	if e.recorder == nil || tok.Confirmation.JKT != "" || tok.Confirmation.X5TS256 != "" {
		return
	}
	// A message has no user agent: its sighting would overwrite the
	// HTTP client's with the hash of "", and that client's next request
	// would look like a replay. A message is compared with the sightings
	// of HTTP requests (by network) and leaves none of its own.
	if req.Message != nil {
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
	if !r.writes(WriteSighting, "the bearer token's sighting was not recorded") {
		return
	}
	var ua string
	if v := req.Headers["user-agent"]; len(v) > 0 {
		ua = v[0]
	}
	// A token whose exp lies past what the store holds is fingerprinted
	// until then, not left unfingerprinted.
	e.recorder.record(tok.Hash, store.Sighting{At: now, IP: req.RemoteIP, UserAgent: ua, ExpiresAt: store.ClampExpiry(tok.ExpiresAt)})
}
