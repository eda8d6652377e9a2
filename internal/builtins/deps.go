package builtins

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tokenguard/pdp/internal/store"
)

// Deps records what the pdp.* built-ins answered during one evaluation, so
// that the decision can be reused later only if every one of them would
// answer the same. Track attaches it to the evaluation's context.
//
// pdp.revocation is compared on the whole revocation in effect (kind, id,
// cut-off, reason). pdp.last_seen is compared on where and how the token was
// seen (ip, prefix, ua_hash, first_seen) and whether it was seen at all;
// last_seen and count move on every sighting, are written behind the
// decision already, and a policy must not make a decision turn on them
// (documented with the built-in).
type Deps struct {
	mu    sync.Mutex
	calls []call
}

// call is one recorded answer of a pdp.* built-in: a revocationCall or a
// seenCall (kept apart, so that each holds only what its kind needs).
type call interface {
	// storeVersion is the store's version of the answer, if it keeps one.
	storeVersion(vs Versioned) (uint64, bool)
	// lookUp asks the store again: same says whether the answer is the
	// recorded one; until is when the record it came from expires.
	lookUp(ctx context.Context, r Reader) (same bool, until time.Time, err error)
	stamped() *atomic.Pointer[stamp]
}

// revocationCall is one pdp.revocation answer.
type revocationCall struct {
	stamp atomic.Pointer[stamp]
	ref   store.TokenRef
	rev   revocationAnswer
}

// seenCall is one pdp.last_seen answer.
type seenCall struct {
	stamp atomic.Pointer[stamp]
	hash  string
	seen  seenAnswer
}

func (c *revocationCall) stamped() *atomic.Pointer[stamp] { return &c.stamp }
func (c *seenCall) stamped() *atomic.Pointer[stamp]       { return &c.stamp }

func (c *revocationCall) storeVersion(vs Versioned) (uint64, bool) { return vs.RevocationVersion() }
func (c *seenCall) storeVersion(vs Versioned) (uint64, bool)       { return vs.FingerprintVersion(c.hash) }

func (c *revocationCall) lookUp(ctx context.Context, r Reader) (bool, time.Time, error) {
	rev, ok, err := r.CheckRevocation(ctx, c.ref)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("revocation lookup: %w", err)
	}
	return answerOf(rev, ok) == c.rev, rev.ExpiresAt, nil
}

func (c *seenCall) lookUp(ctx context.Context, r Reader) (bool, time.Time, error) {
	fp, found, err := r.LastSeen(ctx, c.hash)
	if err != nil {
		return false, time.Time{}, fmt.Errorf("fingerprint lookup: %w", err)
	}
	return seenOf(fp, found) == c.seen, fp.ExpiresAt, nil
}

// stamp is the store's version of an answer, taken before the look-up that
// gave it, and when the record it came from expires (ns; 0: no record, no
// expiry): the answer holds while the version is the store's and its clock
// is before until.
type stamp struct {
	vs      Versioned
	version uint64
	until   int64
}

// Versioned is a Reader that can vouch that an answer still holds without
// looking it up again (see store.Bolt.RevocationVersion). ok false: it
// cannot for this answer.
type Versioned interface {
	RevocationVersion() (v uint64, ok bool)
	FingerprintVersion(tokenHash string) (v uint64, ok bool)
	// Before reports whether the store's clock still reads before t (ns).
	Before(t int64) bool
}

// versionOf is r's version of c's answer, nil when it keeps none.
func versionOf(c call, r Reader) *stamp {
	vs, ok := r.(Versioned)
	if !ok {
		return nil
	}
	v, ok := c.storeVersion(vs)
	if !ok {
		return nil
	}
	return &stamp{vs: vs, version: v}
}

// holds reports whether c's answer holds by its stamp alone: the stamp was
// taken from r and r's version of the answer has not moved.
func holds(c call, r Reader) bool {
	st := c.stamped().Load()
	if st == nil {
		return false
	}
	if vs, ok := r.(Versioned); !ok || vs != st.vs {
		return false
	}
	v, ok := c.storeVersion(st.vs)
	return ok && v == st.version && (st.until == 0 || st.vs.Before(st.until))
}

// lookUp asks the store for c's answer, stamped.
func lookUp(ctx context.Context, c call, r Reader) (same bool, st *stamp, err error) {
	st = versionOf(c, r)
	same, until, err := c.lookUp(ctx, r)
	if err != nil {
		return false, nil, err
	}
	if st != nil && !until.IsZero() {
		st.until = until.UnixNano()
	}
	return same, st, nil
}

type revocationAnswer struct {
	revoked    bool
	kind       store.Kind
	id, reason string
	notBefore  int64
}

type seenAnswer struct {
	found              bool
	ip, prefix, uaHash string
	firstSeen          int64
}

type depsKey struct{}

// Track returns ctx carrying d: the built-ins called in an evaluation with
// that context record their answers in d.
func Track(ctx context.Context, d *Deps) context.Context {
	return context.WithValue(ctx, depsKey{}, d)
}

func tracked(ctx context.Context) *Deps {
	d, _ := ctx.Value(depsKey{}).(*Deps)
	return d
}

func (d *Deps) add(c call, st *stamp) {
	if d == nil {
		return
	}
	c.stamped().Store(st)
	d.mu.Lock()
	d.calls = append(d.calls, c)
	d.mu.Unlock()
}

// Len is the number of answers recorded.
func (d *Deps) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

// Unchanged reports whether every answer recorded in d is still what the
// store says: by its stamp while the store's version of it has not moved
// and its record has not expired, else by looking it up again (and, when it
// is the same, stamping it anew). An error is a failed look-up: the caller
// must not reuse.
func (d *Deps) Unchanged(ctx context.Context) (bool, error) {
	s, err := reader()
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	calls := d.calls
	d.mu.Unlock()
	for _, c := range calls {
		if holds(c, s) {
			continue
		}
		same, st, err := lookUp(ctx, c, s)
		if err != nil || !same {
			return false, err
		}
		c.stamped().Store(st)
	}
	return true, nil
}

func answerOf(r store.Revocation, ok bool) revocationAnswer {
	if !ok {
		return revocationAnswer{}
	}
	return revocationAnswer{revoked: true, kind: r.Kind, id: r.ID, reason: r.Reason, notBefore: r.NotBefore.UnixNano()}
}

func seenOf(fp store.Fingerprint, found bool) seenAnswer {
	if !found {
		return seenAnswer{}
	}
	return seenAnswer{found: true, ip: fp.IP, prefix: fp.Prefix, uaHash: fp.UAHash, firstSeen: fp.FirstSeen.UnixNano()}
}

// HeapBytes estimates the heap d holds: the recorded answers and their
// stamps. The strings of a revocation's token reference are the token
// claims' own and are not counted.
func (d *Deps) HeapBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := int64(unsafe.Sizeof(Deps{})) + int64(cap(d.calls))*int64(unsafe.Sizeof(call(nil)))
	for _, c := range d.calls {
		switch c := c.(type) {
		case *revocationCall:
			n += int64(unsafe.Sizeof(*c)) + int64(len(c.rev.id)+len(c.rev.reason))
		case *seenCall:
			n += int64(unsafe.Sizeof(*c)) + int64(len(c.seen.ip)+len(c.seen.prefix)+len(c.seen.uaHash))
		}
		if c.stamped().Load() != nil {
			n += int64(unsafe.Sizeof(stamp{}))
		}
	}
	return n
}
