package builtins

import (
	"context"
	"fmt"
	"sync"

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

type call struct {
	revocation bool
	ref        store.TokenRef
	hash       string
	rev        revocationAnswer
	seen       seenAnswer
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

func (d *Deps) add(c call) {
	if d == nil {
		return
	}
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
// store says. An error is a failed look-up: the caller must not reuse.
func (d *Deps) Unchanged(ctx context.Context) (bool, error) {
	s, err := reader()
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	calls := d.calls
	d.mu.Unlock()
	for i := range calls {
		c := &calls[i]
		if c.revocation {
			r, ok, err := s.CheckRevocation(ctx, c.ref)
			if err != nil {
				return false, fmt.Errorf("revocation lookup: %w", err)
			}
			if answerOf(r, ok) != c.rev {
				return false, nil
			}
			continue
		}
		fp, found, err := s.LastSeen(ctx, c.hash)
		if err != nil {
			return false, fmt.Errorf("fingerprint lookup: %w", err)
		}
		if seenOf(fp, found) != c.seen {
			return false, nil
		}
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
