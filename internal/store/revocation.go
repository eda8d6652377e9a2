package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Kind says what a revocation targets.
type Kind string

// The kinds of revocation. Value holds the token's jti, the subject, the
// session id (sid) or the client_id, always scoped to an issuer.
const (
	// KindJTI revokes one token, whatever its iat.
	KindJTI Kind = "jti"
	// KindSession revokes the tokens of a session (sid) issued before the
	// cut-off.
	KindSession Kind = "session"
	// KindSubject revokes the tokens of a subject (sub) issued before the
	// cut-off.
	KindSubject Kind = "subject"
	// KindClient revokes the tokens of a client (client_id) issued before the
	// cut-off.
	KindClient Kind = "client"
)

// kinds lists the kinds in the order CheckRevocation consults them.
var kinds = [...]Kind{KindJTI, KindSession, KindSubject, KindClient}

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	_, ok := k.tag()
	return ok
}

func (k Kind) tag() (byte, bool) {
	switch k {
	case KindJTI:
		return tagRevJTI, true
	case KindSession:
		return tagRevSession, true
	case KindSubject:
		return tagRevSubject, true
	case KindClient:
		return tagRevClient, true
	}
	return 0, false
}

func kindOfTag(tag byte) (Kind, bool) {
	switch tag {
	case tagRevJTI:
		return KindJTI, true
	case tagRevSession:
		return KindSession, true
	case tagRevSubject:
		return KindSubject, true
	case tagRevClient:
		return KindClient, true
	}
	return "", false
}

// Revocation revokes a token (KindJTI), or every token of a session, subject
// or client issued before a cut-off.
//
// Matching: a jti revocation matches the token with that issuer and jti
// whatever its iat. The cut-off kinds match a token of that issuer and
// sid/sub/client_id whose iat is before NotBefore; a token issued at or after
// the cut-off passes. Because iat has a precision of one second, a token
// issued within the second of the cut-off counts as issued before it, and a
// token without iat counts as issued before every cut-off: both fail closed.
//
// Replacement: at most one revocation is kept per kind, issuer and value.
// When another one arrives for the same target, the one with the later
// NotBefore is kept (on a tie, the one written last), and it expires at the
// later of the two expiries. An older event delivered late therefore never
// weakens a cut-off already stored, and a revocation never ends earlier than
// one already stored. The revocation that loses is dropped, its id with it;
// PutRevocation returns the one kept.
//
// After ExpiresAt the revocation is ignored and may be swept: set it past the
// expiry of the last token it must stop (for a cut-off, NotBefore plus the
// longest token lifetime of the issuer).
type Revocation struct {
	// ID names the revocation for Get and Delete: at most MaxKeyLen
	// printable ASCII characters, no spaces. Empty: a random id is assigned.
	ID string `json:"id"`
	// Kind says what Value is.
	Kind Kind `json:"kind"`
	// Issuer is the "iss" of the tokens concerned. Required.
	Issuer string `json:"iss"`
	// Value is the jti, sid, sub or client_id revoked. Required.
	Value string `json:"value"`
	// Reason says why, for people (admin API, decision logs).
	Reason string `json:"reason,omitempty"`
	// CreatedAt is when the revocation was made. Zero: now.
	CreatedAt time.Time `json:"created_at"`
	// NotBefore is the cut-off: tokens issued before it are revoked. Zero:
	// CreatedAt. For KindJTI it only records when the token was revoked.
	NotBefore time.Time `json:"not_before"`
	// ExpiresAt is when the revocation stops applying. Required, in the
	// future.
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenRef is what CheckRevocation needs to know about a token. Empty fields
// are not looked up.
type TokenRef struct {
	Issuer    string    // iss; required
	Subject   string    // sub
	JTI       string    // jti
	SessionID string    // sid
	ClientID  string    // client_id
	IssuedAt  time.Time // iat; zero when the token has none
}

// RevocationFilter selects revocations to list; zero fields match all.
type RevocationFilter struct {
	Kind   Kind
	Issuer string
	Value  string
	// Limit caps the number returned; 0 means no cap.
	Limit int
}

// PutRevocation stores r and returns the revocation in effect for its target.
func (b *Bolt) PutRevocation(ctx context.Context, r Revocation) (Revocation, error) {
	defer b.revocationsChanged()()
	if err := ctx.Err(); err != nil {
		return Revocation{}, err
	}
	now := b.now()
	r, err := prepareRevocation(r, now)
	if err != nil {
		return Revocation{}, fmt.Errorf("store: put revocation: %w", err)
	}
	// Group-committed: concurrent revocations share one fsync'ed commit,
	// and each returns only once its commit is on disk.
	var kept Revocation
	err = b.batch.do(ctx, func(tx *bolt.Tx) error {
		var err error
		kept, err = putRevocation(tx, r, now.UnixNano())
		return err
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("store: put %s revocation: %w", r.Kind, err)
	}
	return kept, nil
}

// MaxImport bounds the revocations PutRevocations writes in one call.
const MaxImport = 100_000

// PutRevocations stores many revocations in one fsync'ed transaction (a bulk
// import): all of them or, on any error, none. It returns the revocations in
// effect, in the order given.
func (b *Bolt) PutRevocations(ctx context.Context, rs []Revocation) ([]Revocation, error) {
	defer b.revocationsChanged()()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(rs) > MaxImport {
		return nil, fmt.Errorf("store: put revocations: %w", invalidf("%d revocations in one import, at most %d", len(rs), MaxImport))
	}
	now := b.now()
	prepared := make([]Revocation, len(rs))
	for i, r := range rs {
		p, err := prepareRevocation(r, now)
		if err != nil {
			return nil, fmt.Errorf("store: put revocations: [%d]: %w", i, err)
		}
		prepared[i] = p
	}
	kept := make([]Revocation, len(rs))
	err := b.update(func(tx *bolt.Tx) error {
		for i, r := range prepared {
			k, err := putRevocation(tx, r, now.UnixNano())
			if err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
			kept[i] = k
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: put revocations: %w", err)
	}
	return kept, nil
}

// prepareRevocation validates r and fills in its defaults.
func prepareRevocation(r Revocation, now time.Time) (Revocation, error) {
	if !r.Kind.Valid() {
		return r, invalidf("revocation kind %q is not one of jti, session, subject, client", r.Kind)
	}
	if err := checkField("iss", r.Issuer, true); err != nil {
		return r, err
	}
	if strings.IndexByte(r.Issuer, 0) >= 0 {
		return r, invalidf("iss contains a NUL byte")
	}
	if err := checkField("value", r.Value, true); err != nil {
		return r, err
	}
	if err := checkField("reason", r.Reason, false); err != nil {
		return r, err
	}
	if r.ID == "" {
		r.ID = rand.Text()
	} else if err := checkID("id", r.ID); err != nil {
		return r, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.NotBefore.IsZero() {
		r.NotBefore = r.CreatedAt
	}
	r.CreatedAt, r.NotBefore, r.ExpiresAt = normTime(r.CreatedAt), normTime(r.NotBefore), normTime(ClampExpiry(r.ExpiresAt))
	if _, err := nanos("created_at", r.CreatedAt); err != nil {
		return r, err
	}
	if _, err := nanos("not_before", r.NotBefore); err != nil {
		return r, err
	}
	if _, err := checkExpiry("expires_at", r.ExpiresAt, now); err != nil {
		return r, err
	}
	return r, nil
}

// checkID validates an id: printable ASCII without spaces, so that it can be
// written into a URL path or a log line as it is.
func checkID(field, id string) error {
	if err := checkKey(field, id); err != nil {
		return err
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return invalidf("%s contains a byte outside printable ASCII at offset %d", field, i)
		}
	}
	return nil
}

// revKey is the key of a revocation inside its kind's bucket. Issuers never
// contain NUL, so the key is unambiguous and sorts by issuer, then value.
func revKey(iss, value string) []byte {
	k := make([]byte, 0, len(iss)+1+len(value))
	k = append(k, iss...)
	k = append(k, 0)
	return append(k, value...)
}

// idRef is what the id index stores: the kind's tag and the key.
func idRef(tag byte, key []byte) []byte {
	return append([]byte{tag}, key...)
}

func putRevocation(tx *bolt.Tx, r Revocation, now int64) (Revocation, error) {
	tag, _ := r.Kind.tag()
	kb := kindBucket(tx, r.Kind)
	ids := tx.Bucket(bucketRevocationIDs)
	key := revKey(r.Issuer, r.Value)
	ref := idRef(tag, key)

	if v := ids.Get([]byte(r.ID)); v != nil && !bytes.Equal(v, ref) && idInUse(tx, r.ID, v, now) {
		return Revocation{}, fmt.Errorf("%w: revocation id %q names another revocation", ErrExists, r.ID)
	}

	kept := r
	var oldExp int64
	if old := kb.Get(key); old != nil {
		prev, err := decodeRevocation(r.Kind, key, old)
		if err != nil {
			return Revocation{}, err
		}
		oldExp = prev.ExpiresAt.UnixNano()
		if live(old, now) {
			if prev.NotBefore.After(r.NotBefore) {
				kept = prev
			}
			if prev.ExpiresAt.After(r.ExpiresAt) {
				kept.ExpiresAt = prev.ExpiresAt
			} else {
				kept.ExpiresAt = r.ExpiresAt
			}
		}
		if prev.ID != kept.ID {
			if err := deleteIDIfRef(ids, prev.ID, ref); err != nil {
				return Revocation{}, err
			}
		}
	}
	if err := kb.Put(key, encodeRevocation(kept)); err != nil {
		return Revocation{}, err
	}
	if err := ids.Put([]byte(kept.ID), ref); err != nil {
		return Revocation{}, err
	}
	if err := setTTL(tx, tag, key, oldExp, kept.ExpiresAt.UnixNano()); err != nil {
		return Revocation{}, err
	}
	return kept, nil
}

// idInUse reports whether the id index entry ref still names a live
// revocation with that id. Entries left by expired, unswept revocations may
// be taken over.
func idInUse(tx *bolt.Tx, id string, ref []byte, now int64) bool {
	kind, key, v := lookupRef(tx, ref)
	if v == nil || !live(v, now) {
		return false
	}
	r, err := decodeRevocation(kind, key, v)
	return err != nil || r.ID == id
}

// lookupRef returns the revocation an id index entry points to: its kind,
// key and stored value (nil when there is none).
func lookupRef(tx *bolt.Tx, ref []byte) (Kind, []byte, []byte) {
	if len(ref) < 1 {
		return "", nil, nil
	}
	kind, ok := kindOfTag(ref[0])
	if !ok {
		return "", nil, nil
	}
	return kind, ref[1:], kindBucket(tx, kind).Get(ref[1:])
}

// kindBuckets holds the names of the nested revocation buckets.
var kindBuckets = map[Kind][]byte{
	KindJTI:     []byte(KindJTI),
	KindSession: []byte(KindSession),
	KindSubject: []byte(KindSubject),
	KindClient:  []byte(KindClient),
}

// kindBucket returns the nested bucket that holds revocations of kind.
func kindBucket(tx *bolt.Tx, kind Kind) *bolt.Bucket {
	return tx.Bucket(bucketRevocations).Bucket(kindBuckets[kind])
}

// deleteIDIfRef removes the id index entry of id when it still points to ref.
func deleteIDIfRef(ids *bolt.Bucket, id string, ref []byte) error {
	if v := ids.Get([]byte(id)); v != nil && bytes.Equal(v, ref) {
		return ids.Delete([]byte(id))
	}
	return nil
}

// A revocation's value is, after the record header:
//
//	[0:8]   NotBefore, Unix nanoseconds, big-endian
//	[8:16]  CreatedAt, Unix nanoseconds, big-endian
//	[16]    length of the id
//	[17:]   the id, then the reason
//
// Kind, issuer and value are not repeated: they come from the bucket and the
// key. CheckRevocation compares the cut-off without decoding the rest.
const revFixedLen = 8 + 8 + 1

func encodeRevocation(r Revocation) []byte {
	v := newRecord(r.ExpiresAt.UnixNano(), revFixedLen+len(r.ID)+len(r.Reason))
	v = binary.BigEndian.AppendUint64(v, uint64(r.NotBefore.UnixNano()))
	v = binary.BigEndian.AppendUint64(v, uint64(r.CreatedAt.UnixNano()))
	v = append(v, byte(len(r.ID)))
	v = append(v, r.ID...)
	return append(v, r.Reason...)
}

// revNotBefore returns the cut-off of a stored revocation.
func revNotBefore(v []byte) (int64, bool) {
	if _, ok := recordExpiry(v); !ok || len(v) < headerLen+revFixedLen {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(recordBody(v))), true
}

// decodeRevocation copies the revocation stored at key in kind's bucket out
// of the transaction.
func decodeRevocation(kind Kind, key, v []byte) (Revocation, error) {
	exp, ok := recordExpiry(v)
	body := v[min(len(v), headerLen):]
	sep := bytes.IndexByte(key, 0)
	if !ok || len(body) < revFixedLen || len(body) < revFixedLen+int(body[16]) || sep < 0 {
		return Revocation{}, errCorrupt(bucketRevocations, key)
	}
	idEnd := revFixedLen + int(body[16])
	return Revocation{
		ID:        string(body[revFixedLen:idEnd]),
		Kind:      kind,
		Issuer:    string(key[:sep]),
		Value:     string(key[sep+1:]),
		Reason:    string(body[idEnd:]),
		CreatedAt: time.Unix(0, int64(binary.BigEndian.Uint64(body[8:16]))).UTC(),
		NotBefore: time.Unix(0, int64(binary.BigEndian.Uint64(body[0:8]))).UTC(),
		ExpiresAt: time.Unix(0, exp).UTC(),
	}, nil
}

// GetRevocation returns the unexpired revocation with this id.
func (b *Bolt) GetRevocation(ctx context.Context, id string) (Revocation, error) {
	if err := ctx.Err(); err != nil {
		return Revocation{}, err
	}
	if err := checkKey("id", id); err != nil {
		return Revocation{}, fmt.Errorf("store: get revocation: %w", err)
	}
	now := b.now().UnixNano()
	var r Revocation
	err := b.view(func(tx *bolt.Tx) error {
		kind, key, v := lookupRef(tx, tx.Bucket(bucketRevocationIDs).Get([]byte(id)))
		if v == nil || !live(v, now) {
			return ErrNotFound
		}
		var err error
		if r, err = decodeRevocation(kind, key, v); err != nil {
			return err
		}
		if r.ID != id {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Revocation{}, fmt.Errorf("store: get revocation %q: %w", id, err)
	}
	return r, nil
}

// DeleteRevocation removes the unexpired revocation with this id.
func (b *Bolt) DeleteRevocation(ctx context.Context, id string) error {
	defer b.revocationsChanged()()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey("id", id); err != nil {
		return fmt.Errorf("store: delete revocation: %w", err)
	}
	now := b.now().UnixNano()
	err := b.update(func(tx *bolt.Tx) error {
		kind, key, v := lookupRef(tx, tx.Bucket(bucketRevocationIDs).Get([]byte(id)))
		if v == nil || !live(v, now) {
			return ErrNotFound
		}
		r, err := decodeRevocation(kind, key, v)
		if err != nil {
			return err
		}
		if r.ID != id {
			return ErrNotFound
		}
		return deleteRevocation(tx, r)
	})
	if err != nil {
		return fmt.Errorf("store: delete revocation %q: %w", id, err)
	}
	return nil
}

// deleteRevocation removes a stored revocation with its id and TTL entries.
func deleteRevocation(tx *bolt.Tx, r Revocation) error {
	tag, _ := r.Kind.tag()
	key := revKey(r.Issuer, r.Value)
	if err := kindBucket(tx, r.Kind).Delete(key); err != nil {
		return err
	}
	if err := deleteIDIfRef(tx.Bucket(bucketRevocationIDs), r.ID, idRef(tag, key)); err != nil {
		return err
	}
	return tx.Bucket(bucketTTL).Delete(ttlKey(r.ExpiresAt.UnixNano(), tag, key))
}

// ListRevocations returns the unexpired revocations matching f.
func (b *Bolt) ListRevocations(ctx context.Context, f RevocationFilter) ([]Revocation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.Kind != "" && !f.Kind.Valid() {
		return nil, fmt.Errorf("store: list revocations: %w", invalidf("revocation kind %q is not one of jti, session, subject, client", f.Kind))
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("store: list revocations: %w", invalidf("limit %d is negative", f.Limit))
	}
	now := b.now().UnixNano()
	var out []Revocation
	full := func() bool { return f.Limit > 0 && len(out) >= f.Limit }
	err := b.view(func(tx *bolt.Tx) error {
		for _, k := range kinds {
			if f.Kind != "" && k != f.Kind {
				continue
			}
			if full() {
				return nil
			}
			kb := kindBucket(tx, k)
			if f.Issuer != "" && f.Value != "" {
				key := revKey(f.Issuer, f.Value)
				if v := kb.Get(key); v != nil && live(v, now) {
					r, err := decodeRevocation(k, key, v)
					if err != nil {
						return err
					}
					out = append(out, r)
				}
				continue
			}
			var prefix []byte
			if f.Issuer != "" {
				prefix = append([]byte(f.Issuer), 0)
			}
			c := kb.Cursor()
			n := 0
			for key, v := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, v = c.Next() {
				if full() {
					return nil
				}
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				if f.Value != "" {
					if i := bytes.IndexByte(key, 0); i < 0 || string(key[i+1:]) != f.Value {
						continue
					}
				}
				if !live(v, now) {
					continue
				}
				r, err := decodeRevocation(k, key, v)
				if err != nil {
					return err
				}
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list revocations: %w", err)
	}
	return out, nil
}

// CheckRevocation returns the first unexpired revocation that applies to the
// token, consulting jti, session, subject and client in that order.
func (b *Bolt) CheckRevocation(ctx context.Context, ref TokenRef) (Revocation, bool, error) {
	if err := ctx.Err(); err != nil {
		return Revocation{}, false, err
	}
	if ref.Issuer == "" {
		return Revocation{}, false, fmt.Errorf("store: check revocation: %w", invalidf("iss is empty"))
	}
	if strings.IndexByte(ref.Issuer, 0) >= 0 {
		return Revocation{}, false, fmt.Errorf("store: check revocation: %w", invalidf("iss contains a NUL byte"))
	}
	now := b.now().UnixNano()
	iat := nanosOrMin(ref.IssuedAt)
	lookups := [len(kinds)]string{ref.JTI, ref.SessionID, ref.Subject, ref.ClientID}

	// One key buffer for the four lookups: iss || 0 || value.
	key := make([]byte, 0, len(ref.Issuer)+1+maxLen(lookups[:]))
	key = append(append(key, ref.Issuer...), 0)
	prefix := len(key)

	var r Revocation
	var found bool
	err := b.view(func(tx *bolt.Tx) error {
		revs := tx.Bucket(bucketRevocations)
		for i, kind := range kinds {
			if lookups[i] == "" {
				continue
			}
			key = append(key[:prefix], lookups[i]...)
			v := revs.Bucket(kindBuckets[kind]).Get(key)
			if v == nil || !live(v, now) {
				continue
			}
			if kind != KindJTI {
				nb, ok := revNotBefore(v)
				if !ok {
					return errCorrupt(bucketRevocations, key)
				}
				if iat >= nb {
					continue
				}
			}
			var err error
			if r, err = decodeRevocation(kind, key, v); err != nil {
				return err
			}
			found = true
			return nil
		}
		return nil
	})
	if err != nil {
		return Revocation{}, false, fmt.Errorf("store: check revocation: %w", err)
	}
	return r, found, nil
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}
