package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Family is a refresh-token family: the refresh tokens issued one after the
// other from a single grant. Only Current may be used; presenting a token the
// family rotated out before is reuse, and revokes the family.
//
// A family lives until ExpiresAt (its absolute lifetime; rotation does not
// extend it). The hashes it rotated out are remembered as long as the family.
type Family struct {
	// ID names the family. Empty: a random id is assigned.
	ID string `json:"id"`
	// Current is the hash of the refresh token that may be used next.
	Current string `json:"current"`
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// SessionID is the session (sid) the family belongs to, if any.
	SessionID string    `json:"sid,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// RotatedAt is the time of the latest rotation; zero before the first.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	// Rotations counts rotations.
	Rotations int `json:"rotations"`
	// RevokedAt is when reuse was detected; zero while the family is valid.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at"`
	// CurrentFrom is the Presentation.From of Current's first
	// presentation (an opaque key of its client and network).
	CurrentFrom string `json:"current_from,omitempty"`
	// Retried says that Current was presented a second time within the
	// reuse grace, and let through.
	Retried bool `json:"retried,omitempty"`
}

// Presentation says where a refresh token is presented from, for the reuse
// grace of UseRefreshTokenFrom.
type Presentation struct {
	// From names the client and the network the token is presented from
	// (an opaque, bounded key such as a hash); "" matches nothing.
	From string
	// Grace is how long after a token became the family's current one a
	// second presentation of it from the same From is let through, once;
	// 0 never.
	Grace time.Duration
}

// MaxRefreshReuseGrace bounds Presentation.Grace.
const MaxRefreshReuseGrace = time.Minute

// checkPresentation checks a Presentation for every backend.
func checkPresentation(p Presentation) error {
	if p.Grace < 0 || p.Grace > MaxRefreshReuseGrace {
		return invalidf("reuse grace must be between 0 and %s", MaxRefreshReuseGrace)
	}
	if p.From != "" {
		return checkKey("from", p.From)
	}
	return nil
}

// retry reports whether presenting f's hash once more is the retry the
// reuse grace lets through: hash is still Current (no newer token was
// presented), it was not retried before, it comes from where it first came
// from, and within the grace of becoming current.
func (f Family) retry(hash string, p Presentation, now time.Time) bool {
	if p.Grace <= 0 || p.From == "" || f.Current != hash || f.Retried || f.CurrentFrom != p.From {
		return false
	}
	since := f.RotatedAt
	if since.IsZero() {
		since = f.CreatedAt
	}
	return !now.After(since.Add(p.Grace))
}

// Revoked reports whether the family has been revoked.
func (f Family) Revoked() bool { return !f.RevokedAt.IsZero() }

// CreateFamily records a new family. CreatedAt is set to now; the rotation
// and revocation fields start empty.
func (b *Bolt) CreateFamily(ctx context.Context, f Family) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	now := b.now()
	f, err := prepareFamily(f, now)
	if err != nil {
		return Family{}, fmt.Errorf("store: create family: %w", err)
	}
	nowN := now.UnixNano()
	err = b.update(func(tx *bolt.Tx) error {
		fams := tx.Bucket(bucketFamilies)
		id := []byte(f.ID)
		old := fams.Get(id)
		if old != nil && live(old, nowN) {
			return fmt.Errorf("%w: family %q", ErrExists, f.ID)
		}
		oldExp, _ := recordExpiry(old)
		if err := putFamilyToken(tx, f.Current, f, nowN); err != nil {
			return err
		}
		return putFamily(tx, f, oldExp)
	})
	if err != nil {
		return Family{}, fmt.Errorf("store: create family: %w", err)
	}
	return f, nil
}

func prepareFamily(f Family, now time.Time) (Family, error) {
	if f.ID == "" {
		f.ID = rand.Text()
	} else if err := checkID("id", f.ID); err != nil {
		return f, err
	}
	if err := checkKey("current", f.Current); err != nil {
		return f, err
	}
	if err := checkField("iss", f.Issuer, true); err != nil {
		return f, err
	}
	if err := checkField("sub", f.Subject, true); err != nil {
		return f, err
	}
	if err := checkField("sid", f.SessionID, false); err != nil {
		return f, err
	}
	f.ExpiresAt = normTime(ClampExpiry(f.ExpiresAt))
	if _, err := checkExpiry("expires_at", f.ExpiresAt, now); err != nil {
		return f, err
	}
	f.CreatedAt = normTime(now)
	f.RotatedAt, f.Rotations, f.RevokedAt = time.Time{}, 0, time.Time{}
	return f, nil
}

// FindFamily returns the family a refresh-token hash belongs to.
func (b *Bolt) FindFamily(ctx context.Context, tokenHash string) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return Family{}, fmt.Errorf("store: find family: %w", err)
	}
	now := b.now().UnixNano()
	var f Family
	err := b.view(func(tx *bolt.Tx) error {
		tv := tx.Bucket(bucketFamilyTokens).Get([]byte(tokenHash))
		if tv == nil || !live(tv, now) {
			return ErrNotFound
		}
		fv := tx.Bucket(bucketFamilies).Get(recordBody(tv))
		if fv == nil || !live(fv, now) {
			return ErrNotFound
		}
		var err error
		f, err = decodeFamily(fv)
		return err
	})
	if err != nil {
		return Family{}, fmt.Errorf("store: find family: %w", err)
	}
	return f, nil
}

// checkRotation checks the arguments of RotateFamily, for every backend.
func checkRotation(familyID, oldHash, newHash string) error {
	err := errors.Join(checkKey("family id", familyID), checkKey("old hash", oldHash), checkKey("new hash", newHash))
	if err == nil && oldHash == newHash {
		err = invalidf("new hash equals old hash")
	}
	return err
}

// RotateFamily moves the family from oldHash to newHash, or detects reuse of
// oldHash. On ErrRefreshReuse and ErrFamilyRevoked the family is returned
// with the error, so that the caller can act on its session.
func (b *Bolt) RotateFamily(ctx context.Context, familyID, oldHash, newHash string) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	if err := checkRotation(familyID, oldHash, newHash); err != nil {
		return Family{}, fmt.Errorf("store: rotate family: %w", err)
	}
	now := b.now()
	nowN := now.UnixNano()
	var f Family
	var reused bool
	err := b.update(func(tx *bolt.Tx) error {
		reused = false
		fv := tx.Bucket(bucketFamilies).Get([]byte(familyID))
		if fv == nil || !live(fv, nowN) {
			return fmt.Errorf("family %q: %w", familyID, ErrNotFound)
		}
		var err error
		if f, err = decodeFamily(fv); err != nil {
			return err
		}
		if f.Revoked() {
			return ErrFamilyRevoked
		}
		exp := f.ExpiresAt.UnixNano()
		if oldHash == f.Current {
			if err := putFamilyToken(tx, newHash, f, nowN); err != nil {
				return err
			}
			f.Current, f.RotatedAt = newHash, normTime(now)
			f.Rotations++
			return putFamily(tx, f, exp)
		}
		tv := tx.Bucket(bucketFamilyTokens).Get([]byte(oldHash))
		if tv == nil || !live(tv, nowN) || string(recordBody(tv)) != familyID {
			return fmt.Errorf("refresh token is not one of family %q: %w", familyID, ErrNotFound)
		}
		f.RevokedAt = normTime(now)
		reused = true
		return putFamily(tx, f, exp)
	})
	switch {
	case errors.Is(err, ErrFamilyRevoked):
		return f, fmt.Errorf("store: rotate family %q: %w", familyID, err)
	case err != nil:
		return Family{}, fmt.Errorf("store: rotate family: %w", err)
	case reused:
		return f, fmt.Errorf("store: rotate family %q: %w; family revoked", familyID, ErrRefreshReuse)
	}
	return f, nil
}

// putFamilyToken indexes a refresh-token hash to the family f, until the
// family expires. It returns ErrExists when the hash is taken.
func putFamilyToken(tx *bolt.Tx, hash string, f Family, now int64) error {
	toks := tx.Bucket(bucketFamilyTokens)
	key := []byte(hash)
	old := toks.Get(key)
	if old != nil && live(old, now) {
		return fmt.Errorf("%w: refresh-token hash already belongs to a family", ErrExists)
	}
	oldExp, _ := recordExpiry(old)
	exp := f.ExpiresAt.UnixNano()
	v := append(newRecord(exp, len(f.ID)), f.ID...)
	if err := toks.Put(key, v); err != nil {
		return err
	}
	return setTTL(tx, tagFamilyToken, key, oldExp, exp)
}

// putFamily stores f; oldExp is the expiry of the record it replaces (0:
// none).
func putFamily(tx *bolt.Tx, f Family, oldExp int64) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	exp := f.ExpiresAt.UnixNano()
	key := []byte(f.ID)
	if err := tx.Bucket(bucketFamilies).Put(key, append(newRecord(exp, len(body)), body...)); err != nil {
		return err
	}
	return setTTL(tx, tagFamily, key, oldExp, exp)
}

func decodeFamily(v []byte) (Family, error) {
	if _, ok := recordExpiry(v); !ok {
		return Family{}, fmt.Errorf("unreadable family record")
	}
	var f Family
	if err := json.Unmarshal(recordBody(v), &f); err != nil {
		return Family{}, fmt.Errorf("unreadable family record: %w", err)
	}
	return f, nil
}

// UseRefreshToken is UseRefreshTokenFrom without a reuse grace.
func (b *Bolt) UseRefreshToken(ctx context.Context, f Family, hash string) (Family, error) {
	return b.UseRefreshTokenFrom(ctx, f, hash, Presentation{})
}

// UseRefreshTokenFrom records that the refresh token with hash was presented
// for family f (its ID, Issuer, Subject, SessionID and ExpiresAt; the family
// is created on its first token), atomically:
//
//   - a hash seen before is reuse: the family is revoked and returned with
//     ErrRefreshReuse; except once, within p.Grace, for the current hash
//     presented again from where it first came from (a client retrying
//     after a lost response): the family is returned with Retried set and
//     no error;
//   - a family revoked earlier returns ErrFamilyRevoked;
//   - otherwise the hash becomes the family's Current, one rotation more.
//
// A decision point sees refresh tokens only when they are presented, not
// when they are issued, so with rotation every refresh token may be
// presented once: the second presentation of any of them is reuse.
func (b *Bolt) UseRefreshTokenFrom(ctx context.Context, f Family, hash string, p Presentation) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	now := b.now()
	f.Current = hash
	f, err := prepareFamily(f, now)
	if err == nil {
		err = checkPresentation(p)
	}
	if err != nil {
		return Family{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	f.CurrentFrom = p.From
	nowN := now.UnixNano()
	var kept Family
	var verdict error
	err = b.update(func(tx *bolt.Tx) error {
		verdict = nil
		fams := tx.Bucket(bucketFamilies)
		if tv := tx.Bucket(bucketFamilyTokens).Get([]byte(hash)); tv != nil && live(tv, nowN) {
			fv := fams.Get(recordBody(tv))
			if fv == nil || !live(fv, nowN) {
				return fmt.Errorf("refresh token of a lost family: %w", ErrNotFound)
			}
			var err error
			if kept, err = decodeFamily(fv); err != nil {
				return err
			}
			verdict = ErrRefreshReuse
			if kept.Revoked() {
				return nil
			}
			if kept.retry(hash, p, now) {
				verdict = nil
				kept.Retried = true
				return putFamily(tx, kept, kept.ExpiresAt.UnixNano())
			}
			kept.RevokedAt = normTime(now)
			return putFamily(tx, kept, kept.ExpiresAt.UnixNano())
		}
		fv := fams.Get([]byte(f.ID))
		if fv == nil || !live(fv, nowN) {
			oldExp, _ := recordExpiry(fv)
			if err := putFamilyToken(tx, hash, f, nowN); err != nil {
				return err
			}
			kept = f
			return putFamily(tx, f, oldExp)
		}
		var err error
		if kept, err = decodeFamily(fv); err != nil {
			return err
		}
		if kept.Revoked() {
			verdict = ErrFamilyRevoked
			return nil
		}
		if err := putFamilyToken(tx, hash, kept, nowN); err != nil {
			return err
		}
		kept.Current, kept.RotatedAt = hash, normTime(now)
		kept.CurrentFrom, kept.Retried = p.From, false
		kept.Rotations++
		return putFamily(tx, kept, kept.ExpiresAt.UnixNano())
	})
	if err != nil {
		return Family{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	if verdict != nil {
		return kept, fmt.Errorf("store: use refresh token of family %q: %w", kept.ID, verdict)
	}
	return kept, nil
}
