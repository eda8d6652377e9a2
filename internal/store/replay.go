package store

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SpendDPoPJTI marks a DPoP proof as used until exp. The check and the write
// happen in one write transaction, so of any number of concurrent calls with
// the same key exactly one returns true. Calls are coalesced with concurrent
// ones (one fsync per batch); the answer is given only once the batch is on
// disk.
func (b *Bolt) SpendDPoPJTI(ctx context.Context, key string, exp time.Time) (bool, error) {
	fresh, err := b.spend(ctx, bucketDPoP, tagDPoP, key, exp)
	if err != nil {
		return false, fmt.Errorf("store: spend dpop jti: %w", err)
	}
	return fresh, nil
}

// DPoPJTISpent reports, without writing anything, whether a DPoP proof
// was spent under key and is still remembered: what SpendDPoPJTI would
// answer with false. For explaining a decision, which must change nothing.
func (b *Bolt) DPoPJTISpent(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("replay key", key); err != nil {
		return false, fmt.Errorf("store: dpop jti spent: %w", err)
	}
	now := b.now().UnixNano()
	var spent bool
	err := b.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDPoP).Get([]byte(key))
		spent = v != nil && live(v, now)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: dpop jti spent: %w", err)
	}
	return spent, nil
}

// SETSeen reports whether the SET with key is remembered as applied.
func (b *Bolt) SETSeen(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("set key", key); err != nil {
		return false, fmt.Errorf("store: set seen: %w", err)
	}
	now := b.now().UnixNano()
	var seen bool
	err := b.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSETs).Get([]byte(key))
		seen = v != nil && live(v, now)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: set seen: %w", err)
	}
	return seen, nil
}

// RememberSET records the SET with key as applied until exp, on disk
// before it returns.
func (b *Bolt) RememberSET(ctx context.Context, key string, exp time.Time) error {
	if _, err := b.spend(ctx, bucketSETs, tagSET, key, ClampExpiry(exp)); err != nil {
		return fmt.Errorf("store: remember set: %w", err)
	}
	return nil
}

// spend marks key of a replay bucket as used until exp and reports whether
// it was fresh: not in the bucket, or expired.
func (b *Bolt) spend(ctx context.Context, bucket []byte, tag byte, key string, exp time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("replay key", key); err != nil {
		return false, err
	}
	now := b.now()
	expN, err := checkExpiry("exp", exp, now)
	if err != nil {
		return false, err
	}
	k := []byte(key)
	nowN := now.UnixNano()
	var fresh bool
	// The batch may run the function more than once; each run sets fresh
	// from the state inside its own transaction, and only the committed
	// run's answer is returned.
	err = b.batch.do(ctx, func(tx *bolt.Tx) error {
		fresh = false
		bk := tx.Bucket(bucket)
		var oldExp int64
		if old := bk.Get(k); old != nil {
			if live(old, nowN) {
				return nil
			}
			oldExp, _ = recordExpiry(old)
		}
		if err := bk.Put(k, newRecord(expN, 0)); err != nil {
			return err
		}
		if err := setTTL(tx, tag, k, oldExp, expN); err != nil {
			return err
		}
		fresh = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return fresh, nil
}
