package store

import (
	"context"
	"errors"
	"sync"
)

// ErrUnavailable means the shared state (Redis) could not be reached within
// its timeout. Revocation reads never return it: they are served from the
// local view. The writes and checks that must be shared (DPoP replay,
// fingerprints, refresh families, revocation writes) do, unless the
// configured degradation lets the check pass.
var ErrUnavailable = errors.New("store: shared state unavailable")

// Check names a guardrail check that needs the shared state, for
// degradation settings, notes and metrics.
type Check string

// The checks that degrade when the shared state is unavailable.
const (
	// CheckReplay is the DPoP proof replay check.
	CheckReplay Check = "replay"
	// CheckRefresh is the refresh-token reuse check; it degrades as
	// CheckReplay does.
	CheckRefresh Check = "refresh"
	// CheckFingerprint is the bearer-token fingerprint lookup.
	CheckFingerprint Check = "fingerprint"
	// CheckRevocationWrite is a revocation written through this replica.
	CheckRevocationWrite Check = "revocation_write"
	// CheckFingerprintWrite is the recording of a sighting (bookkeeping).
	CheckFingerprintWrite Check = "fingerprint_write"
)

// Degradation is what a check does when the shared state is unavailable.
type Degradation string

const (
	// Deny fails the check: the decision is a deny with reason
	// state_unavailable.
	Deny Degradation = "deny"
	// AllowWithReason lets the check pass; the decision carries a
	// state_unavailable warning.
	AllowWithReason Degradation = "allow_with_reason"
	// Monitor is AllowWithReason for the fingerprint guardrail: the
	// guardrail is skipped with a warning.
	Monitor Degradation = "monitor"
)

// Allows reports whether the degradation lets the check pass.
func (d Degradation) Allows() bool { return d == AllowWithReason || d == Monitor }

// Valid reports whether d is one of the known degradations.
func (d Degradation) Valid() bool { return d == Deny || d.Allows() }

// Notes collect, for one decision, the checks that met an unavailable
// shared state and whether they were let through, and the fingerprints the
// shared state returned. They are request-scoped: the decision engine
// attaches them to its context, the store writes them. With them a decision
// costs at most one round trip to the shared state per fingerprint, and none
// after one met it unavailable: a kept decision's revalidation and the
// evaluation that follows it share the answer, or the failure.
type Notes struct {
	mu      sync.Mutex
	entries []Note
	seen    map[string]storedSeen
}

// storedSeen is a fingerprint as the shared state returned it.
type storedSeen struct {
	fp    Fingerprint
	found bool
}

func notesOf(ctx context.Context) *Notes {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	return n
}

// fingerprint returns the fingerprint of tokenHash the shared state
// returned earlier in this decision.
func (n *Notes) fingerprint(tokenHash string) (storedSeen, bool) {
	if n == nil {
		return storedSeen{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.seen[tokenHash]
	return a, ok
}

func (n *Notes) rememberFingerprint(tokenHash string, a storedSeen) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = make(map[string]storedSeen, 1)
	}
	n.seen[tokenHash] = a
}

// noted returns whether check c was already noted, and whether it was let
// through then.
func (n *Notes) noted(c Check) (allowed, ok bool) {
	for _, e := range n.Entries() {
		if e.Check == c {
			return e.Allowed, true
		}
	}
	return false, false
}

// Note is one check that met an unavailable shared state.
type Note struct {
	Check   Check
	Allowed bool
}

type notesKey struct{}

// WithNotes returns a context that carries fresh Notes.
func WithNotes(ctx context.Context) (context.Context, *Notes) {
	n := &Notes{}
	return context.WithValue(ctx, notesKey{}, n), n
}

// NoteUnavailable records, in the notes ctx carries (if any), that check c
// met an unavailable shared state and whether it was let through.
func NoteUnavailable(ctx context.Context, c Check, allowed bool) {
	n := notesOf(ctx)
	if n == nil {
		return
	}
	n.mu.Lock()
	n.entries = append(n.entries, Note{Check: c, Allowed: allowed})
	n.mu.Unlock()
}

// Entries returns the notes taken so far.
func (n *Notes) Entries() []Note {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Note(nil), n.entries...)
}

// Empty reports whether no check has met an unavailable shared state.
func (n *Notes) Empty() bool {
	if n == nil {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.entries) == 0
}

// Denied reports whether a check was failed for unavailability.
func (n *Notes) Denied() bool {
	for _, e := range n.Entries() {
		if !e.Allowed {
			return true
		}
	}
	return false
}
