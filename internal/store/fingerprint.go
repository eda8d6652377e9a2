package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sighting is one presentation of a token, as a decision saw it.
type Sighting struct {
	// At is when the token was presented. Zero: now.
	At time.Time
	// IP is the client address the gateway vouches for; the zero Addr when
	// unknown.
	IP netip.Addr
	// UserAgent is the User-Agent header; only its hash is stored.
	UserAgent string
	// ExpiresAt is the token's exp: the fingerprint is kept until then.
	// Required, in the future.
	ExpiresAt time.Time
}

// Fingerprint is where and how a token has been seen: when first and last,
// how often, and the client of the latest sighting. Tokens are identified by
// their SHA-256 hash, never stored themselves.
type Fingerprint struct {
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// IP is the client address of the latest sighting, "" when unknown.
	IP string `json:"ip,omitempty"`
	// Prefix is the network of IP (by default /24 for IPv4, /56 for IPv6),
	// in CIDR notation.
	Prefix string `json:"prefix,omitempty"`
	// UAHash is HashUserAgent of the latest User-Agent.
	UAHash string `json:"ua_hash"`
	// Count is the number of sightings.
	Count uint64 `json:"count"`
	// ExpiresAt is the token's exp; the fingerprint is dropped after it.
	ExpiresAt time.Time `json:"expires_at"`
}

// HashUserAgent returns the lower-case hex SHA-256 of a User-Agent header,
// the same string Rego's crypto.sha256 returns for it.
func HashUserAgent(ua string) string {
	sum := sha256.Sum256([]byte(ua))
	return hex.EncodeToString(sum[:])
}

// network returns the address and its masked network prefix as stored, or
// empty strings for the zero Addr. IPv4-mapped IPv6 addresses count as IPv4.
func (b *Bolt) network(ip netip.Addr) (addr, prefix string) {
	if !ip.IsValid() {
		return "", ""
	}
	ip = ip.Unmap().WithZone("")
	bits := b.opts.PrefixV6Bits
	if ip.Is4() {
		bits = b.opts.PrefixV4Bits
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ip.String(), ""
	}
	return ip.String(), p.String()
}

// RecordFingerprint folds a sighting into the token's fingerprint. The write
// is coalesced with concurrent ones (one fsync per batch). A sighting older
// than the latest one recorded (calls that overtook each other) counts, but
// does not replace the latest client.
func (b *Bolt) RecordFingerprint(ctx context.Context, tokenHash string, s Sighting) error {
	defer b.fingerprintsChanged(tokenHash)()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return fmt.Errorf("store: record fingerprint: %w", err)
	}
	now := b.now()
	seen, err := sightingOf(s, now, b.network)
	if err != nil {
		return fmt.Errorf("store: record fingerprint: %w", err)
	}
	key := []byte(tokenHash)
	nowN := now.UnixNano()
	// The batch may run the function more than once: it reads and writes
	// only inside tx, so a rerun after a rollback starts again from the
	// stored state.
	err = b.batch.do(ctx, func(tx *bolt.Tx) error {
		return recordFingerprint(tx, key, seen, nowN)
	})
	if err != nil {
		return fmt.Errorf("store: record fingerprint: %w", err)
	}
	return nil
}

func recordFingerprint(tx *bolt.Tx, key []byte, seen Fingerprint, now int64) error {
	bk := tx.Bucket(bucketFingerprints)
	fp := seen
	var oldExp int64
	if old := bk.Get(key); old != nil {
		oldExp, _ = recordExpiry(old)
		if live(old, now) {
			prev, err := decodeFingerprint(old)
			if err != nil {
				return err
			}
			fp = mergeFingerprints(prev, seen)
		}
	}
	v, err := encodeFingerprint(fp)
	if err != nil {
		return err
	}
	if err := bk.Put(key, v); err != nil {
		return err
	}
	return setTTL(tx, tagFingerprint, key, oldExp, fp.ExpiresAt.UnixNano())
}

func encodeFingerprint(fp Fingerprint) ([]byte, error) {
	body, err := json.Marshal(fp)
	if err != nil {
		return nil, err
	}
	return append(newRecord(fp.ExpiresAt.UnixNano(), len(body)), body...), nil
}

func decodeFingerprint(v []byte) (Fingerprint, error) {
	if _, ok := recordExpiry(v); !ok {
		return Fingerprint{}, fmt.Errorf("unreadable fingerprint record")
	}
	var fp Fingerprint
	if err := json.Unmarshal(recordBody(v), &fp); err != nil {
		return Fingerprint{}, fmt.Errorf("unreadable fingerprint record: %w", err)
	}
	return fp, nil
}

// LastSeen returns the unexpired fingerprint of a token.
func (b *Bolt) LastSeen(ctx context.Context, tokenHash string) (Fingerprint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Fingerprint{}, false, err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return Fingerprint{}, false, fmt.Errorf("store: last seen: %w", err)
	}
	now := b.now().UnixNano()
	// Pending sightings first: one that commits in between is then seen
	// twice rather than not at all.
	pend, pending := b.pending.get(tokenHash, now)
	var fp Fingerprint
	var found bool
	err := b.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketFingerprints).Get([]byte(tokenHash))
		if v == nil || !live(v, now) {
			return nil
		}
		var err error
		fp, err = decodeFingerprint(v)
		found = err == nil
		return err
	})
	if err != nil {
		return Fingerprint{}, false, fmt.Errorf("store: last seen: %w", err)
	}
	fp, found = withPending(fp, found, pend, pending)
	return fp, found, nil
}

// NoteSighting makes a sighting visible to LastSeen at once, before the
// write that records it (RecordFingerprint or RecordFingerprints) has
// committed; release lets go of it once that write has returned. It moves
// the token's fingerprint version, as a write does.
func (b *Bolt) NoteSighting(tokenHash string, s Sighting) (release func(), err error) {
	if err := checkKey("token hash", tokenHash); err != nil {
		return func() {}, fmt.Errorf("store: note sighting: %w", err)
	}
	seen, err := sightingOf(s, b.now(), b.network)
	if err != nil {
		return func() {}, fmt.Errorf("store: note sighting: %w", err)
	}
	defer b.fingerprintsChanged(tokenHash)()
	rel, err := b.pending.note(tokenHash, seen)
	if err != nil {
		return rel, fmt.Errorf("store: note sighting: %w", err)
	}
	return func() {
		defer b.fingerprintsChanged(tokenHash)()
		rel()
	}, nil
}

// TokenSighting is one sighting of the token with hash TokenHash, for
// RecordFingerprints.
type TokenSighting struct {
	TokenHash string
	Sighting
}

// RecordFingerprints folds many sightings into their tokens' fingerprints in
// one fsync'ed transaction, which concurrent writes may share (a bulk load,
// as for load tests or a migration, and the recorder's batches): all of
// them or, on any error, none. At most MaxImport sightings per call.
// It is not part of the Store interface: a shared backend need not offer it.
func (b *Bolt) RecordFingerprints(ctx context.Context, ss []TokenSighting) error {
	hashes := make([]string, len(ss))
	for i, s := range ss {
		hashes[i] = s.TokenHash
	}
	defer b.fingerprintsChanged(hashes...)()
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ss) > MaxImport {
		return fmt.Errorf("store: record fingerprints: %w", invalidf("%d sightings in one call, at most %d", len(ss), MaxImport))
	}
	now := b.now()
	type prepared struct {
		key  []byte
		seen Fingerprint
	}
	ps := make([]prepared, len(ss))
	for i, s := range ss {
		if err := checkKey("token hash", s.TokenHash); err != nil {
			return fmt.Errorf("store: record fingerprints: [%d]: %w", i, err)
		}
		seen, err := sightingOf(s.Sighting, now, b.network)
		if err != nil {
			return fmt.Errorf("store: record fingerprints: [%d]: %w", i, err)
		}
		ps[i] = prepared{key: []byte(s.TokenHash), seen: seen}
	}
	// Sorted keys fill bbolt's pages in order instead of splitting them at
	// random; a stable sort keeps the sightings of one token in call order.
	slices.SortStableFunc(ps, func(a, b prepared) int { return bytes.Compare(a.key, b.key) })
	nowN := now.UnixNano()
	// Through the group commit: the DPoP spends and single sightings
	// arriving meanwhile share this transaction and its fsync instead of
	// queueing behind it for the writer lock.
	err := b.batch.do(ctx, func(tx *bolt.Tx) error {
		for _, p := range ps {
			if err := recordFingerprint(tx, p.key, p.seen, nowN); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record fingerprints: %w", err)
	}
	return nil
}
