package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Every value stored in a record bucket starts with the same header, so that
// reads and the sweeper can tell an expired record without decoding it:
//
//	[0]    recordVersion
//	[1:9]  expiry, Unix nanoseconds, big-endian
//	[9:]   the body, which each table defines
const (
	recordVersion = 1
	headerLen     = 9
)

// Tags name the table a TTL index entry (and a revocation id entry) points
// into. They are stored in the file: never renumber them.
const (
	tagRevJTI      byte = 1
	tagRevSession  byte = 2
	tagRevSubject  byte = 3
	tagRevClient   byte = 4
	tagFingerprint byte = 5
	tagDPoP        byte = 6
	tagFamily      byte = 7
	tagFamilyToken byte = 8
	tagSET         byte = 9
)

// newRecord returns a value with its header filled in and room for a body of
// bodyLen bytes, which the caller appends.
func newRecord(exp int64, bodyLen int) []byte {
	v := make([]byte, headerLen, headerLen+bodyLen)
	v[0] = recordVersion
	binary.BigEndian.PutUint64(v[1:headerLen], uint64(exp))
	return v
}

// recordExpiry returns the expiry of a stored value, and false when the value
// is not a record this build understands.
func recordExpiry(v []byte) (int64, bool) {
	if len(v) < headerLen || v[0] != recordVersion {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:headerLen])), true
}

// recordBody returns the bytes after the header.
func recordBody(v []byte) []byte { return v[headerLen:] }

// live reports whether a stored value is a readable record that has not
// expired at now (Unix nanoseconds). A record expires at its expiry instant.
func live(v []byte, now int64) bool {
	exp, ok := recordExpiry(v)
	return ok && exp > now
}

// ttlKey is bigEndian(expiry) || tag || key: iterating the TTL bucket from
// the start visits the records that expire first.
func ttlKey(exp int64, tag byte, key []byte) []byte {
	k := make([]byte, 9, 9+len(key))
	binary.BigEndian.PutUint64(k, uint64(exp))
	k[8] = tag
	return append(k, key...)
}

// splitTTLKey is the inverse of ttlKey; the returned key aliases k.
func splitTTLKey(k []byte) (exp int64, tag byte, key []byte, ok bool) {
	if len(k) < 9 {
		return 0, 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(k)), k[8], k[9:], true
}

// setTTL moves the TTL index entry of a record from oldExp (0: none) to
// newExp. An unchanged expiry writes nothing.
func setTTL(tx *bolt.Tx, tag byte, key []byte, oldExp, newExp int64) error {
	if oldExp == newExp {
		return nil
	}
	ttl := tx.Bucket(bucketTTL)
	if oldExp != 0 {
		if err := ttl.Delete(ttlKey(oldExp, tag, key)); err != nil {
			return err
		}
	}
	return ttl.Put(ttlKey(newExp, tag, key), nil)
}

// Times are stored as Unix nanoseconds, which cover the years 1678 to 2262.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// MaxExpiry is the latest expiry a record can have (April 2262, the end of
// what Unix nanoseconds hold).
var MaxExpiry = maxTime.UTC()

// ClampExpiry returns exp, or MaxExpiry when exp lies beyond it. Expiries
// computed from a token's or an event's numbers (a token whose exp is the
// year 9999, a cut-off plus a TTL) are clamped with it before they are
// stored, so that such a number is stored as "as long as possible" rather
// than refused. Every store write clamps the expiries it is given.
func ClampExpiry(exp time.Time) time.Time {
	if exp.After(MaxExpiry) {
		return MaxExpiry
	}
	return exp
}

// nanos converts t for storage; field names the value in the error.
func nanos(field string, t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, invalidf("%s %s is outside the storable range", field, t)
	}
	return t.UnixNano(), nil
}

// nanosOrMin is nanos for comparisons: the zero time and anything earlier
// than the storable range sort before every stored time.
func nanosOrMin(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// normTime drops the monotonic reading and the location, so that stored and
// returned times compare equal with ==.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Round(0).UTC()
}

// checkKey validates an opaque key such as a token hash or an id.
func checkKey(field, k string) error {
	switch {
	case k == "":
		return invalidf("%s is empty", field)
	case len(k) > MaxKeyLen:
		return invalidf("%s is %d bytes long, the limit is %d", field, len(k), MaxKeyLen)
	}
	return nil
}

// checkField validates a stored string: bounded, valid UTF-8 and, when
// required, not empty.
func checkField(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalidf("%s is empty", field)
	case len(v) > MaxFieldLen:
		return invalidf("%s is %d bytes long, the limit is %d", field, len(v), MaxFieldLen)
	case !utf8.ValidString(v):
		return invalidf("%s is not valid UTF-8", field)
	}
	return nil
}

// checkExpiry validates an expiry that must lie after now.
func checkExpiry(field string, exp time.Time, now time.Time) (int64, error) {
	if exp.IsZero() {
		return 0, invalidf("%s is missing", field)
	}
	n, err := nanos(field, exp)
	if err != nil {
		return 0, err
	}
	if !exp.After(now) {
		return 0, invalidf("%s %s is not in the future", field, exp.UTC().Format(time.RFC3339Nano))
	}
	return n, nil
}

// errCorrupt reports a stored value this build cannot read.
func errCorrupt(bucket []byte, key []byte) error {
	return fmt.Errorf("unreadable record in %s at key %q", bucket, key)
}
