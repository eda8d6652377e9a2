package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// followBatch bounds the stream entries read and applied at once.
const followBatch = 1000

// followRetryMax is the longest pause between two attempts of the follower
// to reach Redis again.
const followRetryMax = 250 * time.Millisecond

// followerState is what the follower reports.
type followerState struct {
	started    time.Time
	connected  bool
	catchingUp bool
	caughtUp   bool // the first catch-up has finished
	applied    string
	syncedAt   time.Time // when the local view was last known to be current
	lagMillis  int64
	entries    int64
	resyncs    int
	lastErr    string
	mustResync bool // the stream was trimmed past the last entry applied
}

// SharedStatus reports the replication of revocations into the local view.
type SharedStatus struct {
	// Connected reports whether the last call to Redis succeeded.
	Connected bool `json:"connected"`
	// Ready is false until the local view first caught up with Redis,
	// while it catches up after a reconnection, and while it is not
	// Following.
	Ready bool `json:"ready"`
	// LastAppliedID is the id of the last stream entry applied locally.
	LastAppliedID string `json:"last_applied_id"`
	// SyncedAt is when the local view was last known to be current.
	SyncedAt time.Time `json:"synced_at,omitzero"`
	// StaleSeconds is how long ago that was: the follower lag, how far
	// this replica's copy of the revocations may be behind the stream.
	// Below the blocking-read period (about a second) while it follows,
	// growing while it cannot.
	StaleSeconds float64 `json:"stale_seconds"`
	// MaxLagSeconds is the lag past which the replica reports itself not
	// ready (max_follower_lag).
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	// Following is false once the lag passed MaxLagSeconds.
	Following bool `json:"following"`
	// LagMillis is how long after it was written the last applied entry
	// reached this replica.
	LagMillis int64 `json:"lag_ms"`
	// AppliedEntries counts the stream entries applied since start.
	AppliedEntries int64 `json:"applied_entries"`
	// Resyncs counts full resyncs from the hashes since start.
	Resyncs int `json:"resyncs"`
	// LastError is the last Redis error of the follower, if any.
	LastError string `json:"last_error,omitempty"`
}

// Ready returns an error until the local view has caught up with the
// revocations in Redis, while it catches up after a reconnection, while the
// local file is faulted (see Bolt.Ready), and once it has not been known
// current for longer than MaxFollowerLag: a replica that cannot see new
// revocations is taken out of rotation rather than allowing revoked tokens.
// A shorter outage keeps the replica ready: it answers from its local view,
// and Status says how far behind that is.
func (s *Shared) Ready() error {
	if err := s.local.Ready(); err != nil {
		return err
	}
	return s.FollowerReady()
}

// FollowerReady is the part of Ready that is about following the shared
// revocations, without the local file's.
func (s *Shared) FollowerReady() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.st.caughtUp:
		return errors.New("the local view has not caught up with the shared revocations yet")
	case s.st.catchingUp:
		return errors.New("the local view is catching up with the shared revocations")
	}
	if lag := time.Since(s.st.syncedAt); lag > s.opts.MaxFollowerLag {
		return fmt.Errorf("the local view has not been able to follow the shared revocations for %s (max %s)",
			lag.Truncate(time.Millisecond), s.opts.MaxFollowerLag)
	}
	return nil
}

// WaitReady waits until Ready, or ctx ends.
func (s *Shared) WaitReady(ctx context.Context) error {
	select {
	case <-s.readyC:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status reports the replication state.
func (s *Shared) Status() SharedStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	ref := st.syncedAt
	if ref.IsZero() {
		ref = st.started
	}
	stale := time.Since(ref)
	return SharedStatus{
		Connected:      st.connected,
		Ready:          st.caughtUp && !st.catchingUp && stale <= s.opts.MaxFollowerLag,
		LastAppliedID:  st.applied,
		SyncedAt:       st.syncedAt,
		StaleSeconds:   stale.Seconds(),
		MaxLagSeconds:  s.opts.MaxFollowerLag.Seconds(),
		Following:      stale <= s.opts.MaxFollowerLag,
		LagMillis:      st.lagMillis,
		AppliedEntries: st.entries,
		Resyncs:        st.resyncs,
		LastError:      st.lastErr,
	}
}

// follow keeps the local view in step with the stream until ctx ends.
func (s *Shared) follow(ctx context.Context) {
	defer close(s.done)
	s.mu.Lock()
	s.st.started = time.Now()
	s.mu.Unlock()
	backoff := 50 * time.Millisecond
	for {
		err := s.catchUp(ctx)
		if err == nil {
			backoff = 50 * time.Millisecond
			err = s.tail(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		s.disconnected(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		// Short: after a failover the new master is tried within
		// followRetryMax, so the view follows it promptly.
		backoff = min(2*backoff, followRetryMax)
	}
}

func (s *Shared) disconnected(err error) {
	s.mu.Lock()
	was := s.st.connected
	s.st.connected, s.st.catchingUp = false, false
	s.st.lastErr = err.Error()
	s.mu.Unlock()
	if was {
		s.opts.Logger.Warn("shared state unavailable: revocations are served from the local view", "err", err)
	}
}

// synced records that the local view is current up to id.
func (s *Shared) synced(id string, entries int, lag int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != "" {
		s.st.applied = id
	}
	s.st.syncedAt = time.Now()
	s.st.connected = true
	s.st.entries += int64(entries)
	if entries > 0 {
		s.st.lagMillis = lag
	}
}

// catchUp brings the local view up to the end of the stream: from the last
// entry applied, or by a full resync when there is none, the stream lost
// entries the view has not applied, or the stream is gone.
func (s *Shared) catchUp(ctx context.Context) error {
	last, err := s.appliedID()
	if err != nil {
		return fmt.Errorf("read the last applied stream id: %w", err)
	}
	first, exists, err := s.streamFirst(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if !s.st.connected {
		s.opts.Logger.Info("shared state reachable: catching up", "from", last)
	}
	s.st.connected, s.st.catchingUp = true, true
	mustResync := s.st.mustResync
	s.mu.Unlock()

	lastID, ok := parseStreamID(last)
	switch {
	case last == "" || !exists:
		// Never synced, or Redis lost the stream: what this replica holds
		// is published first (merging never weakens a revocation), then
		// the view is rebuilt from Redis.
		if err := s.seed(ctx); err != nil {
			return err
		}
		fallthrough
	case mustResync || !ok || lastID.less(first):
		if last, err = s.resync(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		s.st.mustResync = false
		s.mu.Unlock()
	}
	for {
		n, id, err := s.readRange(ctx, last)
		if err != nil {
			return err
		}
		if id != "" {
			last = id
		}
		if n < followBatch {
			break
		}
	}
	s.synced(last, 0, 0)
	s.mu.Lock()
	s.st.catchingUp = false
	firstTime := !s.st.caughtUp
	s.st.caughtUp = true
	s.mu.Unlock()
	if firstTime {
		close(s.readyC)
	}
	return nil
}

// streamFirst returns the id of the stream's first entry, and whether the
// stream exists.
func (s *Shared) streamFirst(ctx context.Context) (streamID, bool, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	msgs, err := s.rdb().XRangeN(cctx, s.keys.stream, "-", "+", 1).Result()
	if err != nil {
		return streamID{}, false, failed(ctx, "read the revocation stream", err)
	}
	if len(msgs) == 0 {
		return streamID{}, false, nil
	}
	id, _ := parseStreamID(msgs[0].ID)
	return id, true, nil
}

// readRange applies up to followBatch entries after id and returns how many
// it read and the last id.
func (s *Shared) readRange(ctx context.Context, after string) (int, string, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	msgs, err := s.rdb().XRangeN(cctx, s.keys.stream, "("+after, "+", followBatch).Result()
	if err != nil {
		return 0, "", failed(ctx, "read the revocation stream", err)
	}
	if len(msgs) == 0 {
		return 0, "", nil
	}
	return len(msgs), msgs[len(msgs)-1].ID, s.apply(msgs)
}

func (s *Shared) apply(msgs []redis.XMessage) error {
	last := msgs[len(msgs)-1].ID
	if err := s.applyOps(s.decodeEntries(msgs), last); err != nil {
		return fmt.Errorf("apply revocations to the local view: %w", err)
	}
	var lag int64
	if id, ok := parseStreamID(last); ok {
		lag = max(time.Now().UnixMilli()-int64(id.ms), 0)
	}
	s.synced(last, len(msgs), lag)
	return nil
}

// errFellBehind asks for a full resync.
var errFellBehind = errors.New("fell behind the trimmed revocation stream")

// tail applies new stream entries as they arrive, until an error.
func (s *Shared) tail(ctx context.Context) error {
	for {
		s.mu.Lock()
		last := s.st.applied
		s.mu.Unlock()
		// Redis times blocked reads out at its own tick (hz 10: up to
		// 100ms late); the extra second tells that from a dead connection.
		cctx, cancel := context.WithTimeout(ctx, s.opts.BlockFor+s.opts.Timeout+time.Second)
		res, err := s.rdb().XRead(cctx, &redis.XReadArgs{
			Streams: []string{s.keys.stream, last},
			Count:   followBatch,
			Block:   s.opts.BlockFor,
		}).Result()
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			s.synced("", 0, 0)
			continue
		case err != nil:
			return failed(ctx, "follow the revocation stream", err)
		case len(res) == 0 || len(res[0].Messages) == 0:
			s.synced("", 0, 0)
			continue
		}
		msgs := res[0].Messages
		if len(msgs) == followBatch {
			// Far behind: entries after last may have been trimmed.
			first, exists, err := s.streamFirst(ctx)
			if err != nil {
				return err
			}
			if lastID, ok := parseStreamID(last); !exists || !ok || lastID.less(first) {
				s.mu.Lock()
				s.st.mustResync = true
				s.mu.Unlock()
				return errFellBehind
			}
		}
		if err := s.apply(msgs); err != nil {
			return err
		}
	}
}

// resync rebuilds the local revocations from the Redis hashes. The stream's
// newest id is read first: entries written during the resync are applied
// again afterwards, which converges (puts merge, deletions match by id).
func (s *Shared) resync(ctx context.Context) (string, error) {
	cctx, cancel := s.call(ctx)
	msgs, err := s.rdb().XRevRangeN(cctx, s.keys.stream, "+", "-", 1).Result()
	cancel()
	if err != nil {
		return "", failed(ctx, "resync revocations", err)
	}
	newest := "0-0"
	if len(msgs) > 0 {
		newest = msgs[0].ID
	}
	now := s.now().UnixNano()
	var all []Revocation
	for _, k := range kinds {
		err := s.scanRevocations(ctx, k, 1000, "resync revocations", func(kv []string) error {
			for i := 1; i < len(kv); i += 2 {
				r, err := decodeSharedRev(kv[i])
				if err != nil {
					s.opts.Logger.Error("skipping an unreadable shared revocation", "kind", k, "err", err)
					continue
				}
				if r.ExpiresAt.UnixNano() > now {
					all = append(all, r)
				}
			}
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	if err := s.replaceLocal(all, newest); err != nil {
		return "", fmt.Errorf("resync revocations: %w", err)
	}
	s.mu.Lock()
	s.st.resyncs++
	s.mu.Unlock()
	s.opts.Logger.Info("revocations resynced from the shared state", "revocations", len(all), "stream_id", newest)
	return newest, nil
}

// seed publishes the local revocations to Redis, merged with what is there.
func (s *Shared) seed(ctx context.Context) error {
	local, err := s.local.ListRevocations(ctx, RevocationFilter{})
	if err != nil || len(local) == 0 {
		return err
	}
	for start := 0; start < len(local); start += followBatch {
		chunk := local[start:min(start+followBatch, len(local))]
		if err := s.publish(ctx, chunk); err != nil {
			return err
		}
	}
	s.opts.Logger.Info("local revocations published to the shared state", "revocations", len(local))
	return nil
}

// publish writes revocations to Redis without applying them locally; one
// whose id Redis gave to another revocation is skipped.
func (s *Shared) publish(ctx context.Context, rs []Revocation) error {
	now := s.now()
	args := []any{pad(now.UnixNano()), s.keys.revHashPrefix, s.opts.StreamMaxLen, len(rs)}
	for _, r := range rs {
		args = append(args, string(r.Kind), revField(r), r.ID, encodeSharedRev(r))
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout+time.Duration(len(rs))*20*time.Microsecond)
	res, err := scriptPutRevocations.Run(cctx, s.rdb(), []string{s.keys.stream, s.keys.revIDs}, args...).Slice()
	cancel()
	if err != nil {
		return failed(ctx, "publish revocations", err)
	}
	if len(res) > 0 && res[0] == "exists" && len(rs) > 1 {
		for _, r := range rs {
			if err := s.publish(ctx, []Revocation{r}); err != nil {
				return err
			}
		}
	}
	return nil
}
