package builtins

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	calls []*call
}

type call struct {
	revocation bool
	ref        store.TokenRef
	hash       string
	rev        revocationAnswer
	seen       seenAnswer
	// stamp says until when the answer holds without a look-up; nil when
	// the store does not version its answers. A look-up that finds the same
	// answer stamps it again.
	stamp atomic.Pointer[stamp]
}

// stamp is the store's version of an answer, taken before the look-up that
// gave it, and when the record it came from expires (ns; 0: no record, no
// expiry): the answer holds while the version is the store's and its clock
// is before until.
type stamp struct {
	src     Reader
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

// version is r's version of c's answer, nil when it keeps none.
func (c *call) version(r Reader) *stamp {
	vs, ok := r.(Versioned)
	if !ok {
		return nil
	}
	var v uint64
	if c.revocation {
		v, ok = vs.RevocationVersion()
	} else {
		v, ok = vs.FingerprintVersion(c.hash)
	}
	if !ok {
		return nil
	}
	return &stamp{src: r, vs: vs, version: v}
}

// holds reports whether c's answer holds by its stamp alone.
func (c *call) holds(r Reader) bool {
	st := c.stamp.Load()
	if st == nil || st.src != r {
		return false
	}
	var v uint64
	var ok bool
	if c.revocation {
		v, ok = st.vs.RevocationVersion()
	} else {
		v, ok = st.vs.FingerprintVersion(c.hash)
	}
	return ok && v == st.version && (st.until == 0 || st.vs.Before(st.until))
}

// lookUp asks the store for c's answer, stamped. until is when the record
// of a revoked (found) answer expires.
func (c *call) lookUp(ctx context.Context, r Reader) (same bool, st *stamp, err error) {
	st = c.version(r)
	var until time.Time
	if c.revocation {
		rev, ok, err := r.CheckRevocation(ctx, c.ref)
		if err != nil {
			return false, nil, fmt.Errorf("revocation lookup: %w", err)
		}
		same, until = answerOf(rev, ok) == c.rev, rev.ExpiresAt
	} else {
		fp, found, err := r.LastSeen(ctx, c.hash)
		if err != nil {
			return false, nil, fmt.Errorf("fingerprint lookup: %w", err)
		}
		same, until = seenOf(fp, found) == c.seen, fp.ExpiresAt
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

func (d *Deps) add(c *call, st *stamp) {
	if d == nil {
		return
	}
	c.stamp.Store(st)
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
		if c.holds(s) {
			continue
		}
		same, st, err := c.lookUp(ctx, s)
		if err != nil || !same {
			return false, err
		}
		c.stamp.Store(st)
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
