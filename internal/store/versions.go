package store

import (
	"hash/maphash"
	"sync/atomic"
)

// Versions let a reader that keeps answers (a reused decision keeps what
// pdp.revocation and pdp.last_seen answered) tell that an answer still holds
// without looking it up again. A version moves when a write that could
// change the answer starts and again when it has ended; a reader takes the
// version before it looks up the answer, so that any write it may have seen
// (or missed) shows as a change.
// Answers also change with time (a revocation or a fingerprint expires):
// the reader keeps when the record it read expires and compares it with
// Before.

// fingerprintShards is how many version counters fingerprints share: a
// sighting of one token changes the version of 1/fingerprintShards of them.
const fingerprintShards = 1 << 12

type versions struct {
	// closed: the store is closed; no answer holds without a look-up
	// (which fails).
	closed       atomic.Bool
	revocations  atomic.Uint64
	fingerprints [fingerprintShards]atomic.Uint64
	seed         maphash.Seed
}

func newVersions() *versions { return &versions{seed: maphash.MakeSeed()} }

func (v *versions) shard(tokenHash string) *atomic.Uint64 {
	return &v.fingerprints[maphash.String(v.seed, tokenHash)%fingerprintShards]
}

// RevocationVersion moves with every write of revocations: what
// CheckRevocation answers for any token can only have changed, but for the
// passing of time, if it did.
func (b *Bolt) RevocationVersion() (uint64, bool) {
	return b.versions.revocations.Load(), !b.versions.closed.Load()
}

// FingerprintVersion moves with every write of tokenHash's fingerprint (and
// of some others'): what LastSeen answers for it can only have changed, but
// for the passing of time, if it did.
func (b *Bolt) FingerprintVersion(tokenHash string) (uint64, bool) {
	return b.versions.shard(tokenHash).Load(), !b.versions.closed.Load()
}

// Before reports whether the store's clock still reads before t (ns since
// the epoch): whether a record expiring at t is still in effect.
func (b *Bolt) Before(t int64) bool { return b.now().UnixNano() < t }

// revocationsChanged moves the revocation version now and, through the
// function it returns, again once the write is over. Every method that
// writes revocations starts with `defer b.revocationsChanged()()`: a reader
// whose look-up sees a write committed in between already sees a new
// version (the first move), and an answer stamped while the write was
// under way loses its stamp when it ends (the second).
func (b *Bolt) revocationsChanged() func() {
	b.versions.revocations.Add(1)
	return func() { b.versions.revocations.Add(1) }
}

// fingerprintsChanged is revocationsChanged for the fingerprints of
// tokenHashes; no hash: all of them.
func (b *Bolt) fingerprintsChanged(tokenHashes ...string) func() {
	move := func() {
		if len(tokenHashes) == 0 {
			for i := range b.versions.fingerprints {
				b.versions.fingerprints[i].Add(1)
			}
			return
		}
		for _, h := range tokenHashes {
			b.versions.shard(h).Add(1)
		}
	}
	move()
	return move
}

// RevocationVersion is the local view's: every replica applies the
// revocations it follows to its bbolt file, which CheckRevocation reads.
func (s *Shared) RevocationVersion() (uint64, bool) { return s.local.RevocationVersion() }

// FingerprintVersion: never, fingerprints live in Redis, written by every
// replica.
func (s *Shared) FingerprintVersion(string) (uint64, bool) { return 0, false }

// Before reads the local view's clock.
func (s *Shared) Before(t int64) bool { return s.local.Before(t) }
