package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepBatch bounds the TTL entries handled by one sweep transaction, so that
// sweeping a large backlog never holds the writer lock, which decisions need
// for their replay and fingerprint writes, for more than a few milliseconds.
const sweepBatch = 256

// A sweep of a backlog rests between its transactions, sweepRestFactor
// times as long as the last one took and at least sweepRestMin: it holds
// the writer lock a fifth of the time at most, so that a write made for a
// decision (a DPoP proof's spend, a fingerprint) waits behind one sweep
// transaction at most, and the sweep's CPU and disk writes are spread out
// instead of taking a one-core replica for a quarter of a second at once
// (a minute's backlog under load was 47 transactions back to back).
const (
	sweepRestFactor = 4
	sweepRestMin    = time.Millisecond
)

// sweepRest is the rest after a transaction that lasted took.
func sweepRest(took time.Duration) time.Duration {
	return max(sweepRestFactor*took, sweepRestMin)
}

// restCtx sleeps for d, or until ctx is done, whose error it returns.
func restCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sweep removes the records that expired at or before now. It walks the TTL
// index from the earliest expiry, sweepBatch entries per write transaction:
// first it collects the due keys, then deletes them (deleting under a live
// cursor can skip keys). A TTL entry whose record has since been given a
// later expiry is dropped and the record kept. Between two transactions it
// rests (sweepRest).
func (b *Bolt) Sweep(ctx context.Context, now time.Time) (int, error) {
	defer b.revocationsChanged()()
	defer b.fingerprintsChanged()()
	nowN := nanosOrMin(now)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		var more bool
		start := time.Now()
		err := b.update(func(tx *bolt.Tx) error {
			var err error
			n, more, err = sweepOnce(tx, nowN, sweepBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: sweep: %w", err)
		}
		total += n
		if !more {
			return total, nil
		}
		if err := b.rest(ctx, sweepRest(time.Since(start))); err != nil {
			return total, err
		}
	}
}

// sweepOnce handles up to limit due TTL entries. more reports that the limit
// was reached, so that more entries may be due.
func sweepOnce(tx *bolt.Tx, now int64, limit int) (removed int, more bool, err error) {
	ttl := tx.Bucket(bucketTTL)
	var due [][]byte
	c := ttl.Cursor()
	for k, _ := c.First(); k != nil && len(due) < limit; k, _ = c.Next() {
		if exp, _, _, ok := splitTTLKey(k); ok && exp > now {
			break
		}
		due = append(due, bytes.Clone(k))
	}
	for _, k := range due {
		if err := ttl.Delete(k); err != nil {
			return removed, false, err
		}
		_, tag, key, ok := splitTTLKey(k)
		if !ok {
			continue
		}
		n, err := sweepRecord(tx, tag, key, now)
		if err != nil {
			return removed, false, err
		}
		removed += n
	}
	return removed, len(due) == limit, nil
}

// sweepRecord deletes the record a TTL entry points to, if it has expired.
func sweepRecord(tx *bolt.Tx, tag byte, key []byte, now int64) (int, error) {
	if kind, ok := kindOfTag(tag); ok {
		kb := kindBucket(tx, kind)
		v := kb.Get(key)
		if v == nil || live(v, now) {
			return 0, nil
		}
		r, err := decodeRevocation(kind, key, v)
		if err != nil {
			// Unreadable: drop the record; its id entry, if any, then
			// points nowhere and reads ignore it.
			return 1, kb.Delete(key)
		}
		return 1, deleteRevocation(tx, r)
	}
	var bk *bolt.Bucket
	switch tag {
	case tagFingerprint:
		bk = tx.Bucket(bucketFingerprints)
	case tagDPoP:
		bk = tx.Bucket(bucketDPoP)
	case tagSET:
		bk = tx.Bucket(bucketSETs)
	case tagFamily:
		bk = tx.Bucket(bucketFamilies)
	case tagFamilyToken:
		bk = tx.Bucket(bucketFamilyTokens)
	default:
		return 0, nil
	}
	if v := bk.Get(key); v == nil || live(v, now) {
		return 0, nil
	}
	return 1, bk.Delete(key)
}

// RunSweeper sweeps at once and then every interval, until ctx is done; then
// it returns nil. Failed sweeps are logged and retried at the next tick.
func (b *Bolt) RunSweeper(ctx context.Context, interval time.Duration) error {
	return runSweeper(ctx, interval, b.Sweep, b.now, b.opts.Logger)
}

// runSweeper is RunSweeper for a store's sweep, clock and logger.
func runSweeper(ctx context.Context, interval time.Duration, sweep func(context.Context, time.Time) (int, error), now func() time.Time, logger *slog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("store: run sweeper: %w", invalidf("interval %s is not positive", interval))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := sweep(ctx, now())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			logger.ErrorContext(ctx, "store sweep failed", "err", err, "removed", n)
		case n > 0:
			logger.DebugContext(ctx, "store swept", "removed", n, "took", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
