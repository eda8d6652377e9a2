package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// sharedRev is a revocation as the shared store keeps it in Redis.
type sharedRev struct {
	R  Revocation `json:"r"`
	NB string     `json:"nb"`
	E  string     `json:"e"`
}

func encodeSharedRev(r Revocation) string {
	b, _ := json.Marshal(sharedRev{R: r, NB: pad(r.NotBefore.UnixNano()), E: pad(r.ExpiresAt.UnixNano())})
	return string(b)
}

func decodeSharedRev(s string) (Revocation, error) {
	var v sharedRev
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return Revocation{}, fmt.Errorf("unreadable revocation: %w", err)
	}
	r := v.R
	if !r.Kind.Valid() || r.Issuer == "" || r.ID == "" {
		return Revocation{}, fmt.Errorf("unreadable revocation: kind, iss or id missing")
	}
	r.CreatedAt, r.NotBefore, r.ExpiresAt = normTime(r.CreatedAt), normTime(r.NotBefore), normTime(r.ExpiresAt)
	return r, nil
}

// revField is the field of a revocation in its kind's hash.
func revField(r Revocation) string { return string(revKey(r.Issuer, r.Value)) }

// PutRevocation writes r to Redis and applies the revocation kept to the
// local view before it returns, so that this replica's next decision sees
// it; the others apply it from the stream.
func (s *Shared) PutRevocation(ctx context.Context, r Revocation) (Revocation, error) {
	kept, err := s.PutRevocations(ctx, []Revocation{r})
	if err != nil {
		return Revocation{}, err
	}
	return kept[0], nil
}

// PutRevocations writes revocations to Redis in one script, all or none,
// then applies them to the local view.
func (s *Shared) PutRevocations(ctx context.Context, rs []Revocation) ([]Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.local.writable(); err != nil {
		// The local view could not take the revocation: refused before
		// Redis has it, so that the caller's retry finds a clean state.
		return nil, fmt.Errorf("store: put revocations: %w", err)
	}
	if len(rs) > MaxImport {
		return nil, fmt.Errorf("store: put revocations: %w", invalidf("%d revocations in one import, at most %d", len(rs), MaxImport))
	}
	now := s.now()
	args := make([]any, 0, 4+4*len(rs))
	args = append(args, pad(now.UnixNano()), s.keys.revHashPrefix, s.opts.StreamMaxLen, len(rs))
	for i, r := range rs {
		p, err := prepareRevocation(r, now)
		if err != nil {
			return nil, fmt.Errorf("store: put revocations: [%d]: %w", i, err)
		}
		args = append(args, string(p.Kind), revField(p), p.ID, encodeSharedRev(p))
	}
	// A large import gets the time it needs, bounded still.
	cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout+time.Duration(len(rs))*20*time.Microsecond)
	defer cancel()
	res, err := scriptPutRevocations.Run(cctx, s.rdb(), []string{s.keys.stream, s.keys.revIDs}, args...).Slice()
	if err != nil {
		err = failed(ctx, "put revocations", err)
		if errors.Is(err, ErrUnavailable) {
			s.degrade(ctx, CheckRevocationWrite, Deny)
		}
		return nil, err
	}
	if len(res) >= 2 && res[0] == "exists" {
		i, _ := strconv.Atoi(fmt.Sprint(res[1]))
		return nil, fmt.Errorf("store: put revocations: [%d]: %w: revocation id %q names another revocation", i, ErrExists, rs[min(i, len(rs)-1)].ID)
	}
	if len(res) != 2+len(rs) || res[0] != "ok" {
		return nil, fmt.Errorf("store: put revocations: unexpected script reply")
	}
	kept := make([]Revocation, len(rs))
	for i := range rs {
		str, _ := res[2+i].(string)
		if kept[i], err = decodeSharedRev(str); err != nil {
			return nil, fmt.Errorf("store: put revocations: [%d]: %w", i, err)
		}
	}
	if err := s.applyLocal(kept, nil, ""); err != nil {
		return nil, fmt.Errorf("store: put revocations: written to Redis, not yet applied locally: %w", err)
	}
	return kept, nil
}

// DeleteRevocation removes the revocation from Redis and from the local
// view; the other replicas apply the deletion from the stream.
func (s *Shared) DeleteRevocation(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey("id", id); err != nil {
		return fmt.Errorf("store: delete revocation: %w", err)
	}
	if err := s.local.writable(); err != nil {
		return fmt.Errorf("store: delete revocation: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	res, err := scriptDeleteRevocation.Run(cctx, s.rdb(), []string{s.keys.stream, s.keys.revIDs},
		pad(s.now().UnixNano()), s.keys.revHashPrefix, s.opts.StreamMaxLen, id).Slice()
	if err != nil {
		err = failed(ctx, "delete revocation", err)
		if errors.Is(err, ErrUnavailable) {
			s.degrade(ctx, CheckRevocationWrite, Deny)
		}
		return err
	}
	if len(res) != 3 || res[0] != "ok" {
		return fmt.Errorf("store: delete revocation %q: %w", id, ErrNotFound)
	}
	str, _ := res[2].(string)
	r, err := decodeSharedRev(str)
	if err != nil {
		return fmt.Errorf("store: delete revocation %q: %w", id, err)
	}
	return s.applyLocal(nil, []Revocation{r}, "")
}

// GetRevocation reads the local view.
func (s *Shared) GetRevocation(ctx context.Context, id string) (Revocation, error) {
	return s.local.GetRevocation(ctx, id)
}

// ListRevocations reads the local view.
func (s *Shared) ListRevocations(ctx context.Context, f RevocationFilter) ([]Revocation, error) {
	return s.local.ListRevocations(ctx, f)
}

// CheckRevocation reads the local view: no network round trip on the
// decision path, and it keeps answering while Redis is unavailable.
func (s *Shared) CheckRevocation(ctx context.Context, ref TokenRef) (Revocation, bool, error) {
	return s.local.CheckRevocation(ctx, ref)
}

// keyStreamID is the meta key of the last stream entry applied locally.
var keyStreamID = []byte("shared_stream_id")

// applyLocal puts and deletes revocations in the local view in one
// transaction, and records streamID as applied when it is not empty.
// Expired revocations are skipped. Redis is the authority: a local
// revocation holding an id that Redis gave to another is dropped.
func (s *Shared) applyLocal(puts, dels []Revocation, streamID string) error {
	defer s.local.revocationsChanged()()
	now := s.now().UnixNano()
	return s.local.update(func(tx *bolt.Tx) error {
		for _, r := range dels {
			if err := deleteLocal(tx, r); err != nil {
				return err
			}
		}
		for _, r := range puts {
			if err := putLocal(tx, r, now); err != nil {
				return err
			}
		}
		if streamID != "" {
			return tx.Bucket(bucketMeta).Put(keyStreamID, []byte(streamID))
		}
		return nil
	})
}

// streamOp is one entry of the revocation stream.
type streamOp struct {
	del bool
	r   Revocation
}

// applyOps applies stream entries in order, in one transaction.
func (s *Shared) applyOps(ops []streamOp, streamID string) error {
	defer s.local.revocationsChanged()()
	now := s.now().UnixNano()
	return s.local.update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			var err error
			if op.del {
				err = deleteLocal(tx, op.r)
			} else {
				err = putLocal(tx, op.r, now)
			}
			if err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyStreamID, []byte(streamID))
	})
}

func putLocal(tx *bolt.Tx, r Revocation, now int64) error {
	if r.ExpiresAt.UnixNano() <= now {
		return nil
	}
	_, err := putRevocation(tx, r, now)
	if errors.Is(err, ErrExists) {
		kind, key, v := lookupRef(tx, tx.Bucket(bucketRevocationIDs).Get([]byte(r.ID)))
		if v != nil {
			if other, derr := decodeRevocation(kind, key, v); derr == nil {
				if derr := deleteRevocation(tx, other); derr != nil {
					return derr
				}
			}
		}
		_, err = putRevocation(tx, r, now)
	}
	return err
}

// deleteLocal removes the local revocation of r's target when it is r: the
// same id, made at the same time with the same cut-off (its expiry may have
// been extended by a merge). A later revocation of the target, even one
// that reuses the id, is kept: the writing replica applies its own writes
// at once, so its follower may replay an older deletion after them.
func deleteLocal(tx *bolt.Tx, r Revocation) error {
	key := revKey(r.Issuer, r.Value)
	v := kindBucket(tx, r.Kind).Get(key)
	if v == nil {
		return nil
	}
	cur, err := decodeRevocation(r.Kind, key, v)
	if err != nil || cur.ID != r.ID || !cur.CreatedAt.Equal(r.CreatedAt) || !cur.NotBefore.Equal(r.NotBefore) {
		return nil
	}
	return deleteRevocation(tx, cur)
}

// replaceLocal makes the local revocations exactly rs (a full resync) and
// records streamID as applied.
func (s *Shared) replaceLocal(rs []Revocation, streamID string) error {
	defer s.local.revocationsChanged()()
	now := s.now().UnixNano()
	return s.local.update(func(tx *bolt.Tx) error {
		revs := tx.Bucket(bucketRevocations)
		for _, k := range kinds {
			if err := revs.DeleteBucket([]byte(k)); err != nil {
				return err
			}
			if _, err := revs.CreateBucket([]byte(k)); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketRevocationIDs); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketRevocationIDs); err != nil {
			return err
		}
		ttl := tx.Bucket(bucketTTL)
		var stale [][]byte
		c := ttl.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if _, tag, _, ok := splitTTLKey(k); ok {
				if _, isRev := kindOfTag(tag); isRev {
					stale = append(stale, bytes.Clone(k))
				}
			}
		}
		for _, k := range stale {
			if err := ttl.Delete(k); err != nil {
				return err
			}
		}
		for _, r := range rs {
			if err := putLocal(tx, r, now); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyStreamID, []byte(streamID))
	})
}

// appliedID returns the last stream id applied to the local view, "" when
// none.
func (s *Shared) appliedID() (string, error) {
	var id string
	err := s.local.view(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyStreamID))
		return nil
	})
	return id, err
}

// streamID is a parsed Redis stream id, ms-seq.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

// decodeEntries turns stream messages into operations; an unreadable entry
// is logged and skipped.
func (s *Shared) decodeEntries(msgs []redis.XMessage) []streamOp {
	ops := make([]streamOp, 0, len(msgs))
	for _, m := range msgs {
		op, _ := m.Values["op"].(string)
		str, _ := m.Values["rev"].(string)
		r, err := decodeSharedRev(str)
		if err != nil || (op != "put" && op != "del") {
			s.opts.Logger.Error("skipping an unreadable revocation stream entry", "id", m.ID, "err", err)
			continue
		}
		ops = append(ops, streamOp{del: op == "del", r: r})
	}
	return ops
}
