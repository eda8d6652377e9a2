package store

import (
	"errors"
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Pending sightings give fingerprints read-your-writes. A decision point
// records a sighting after it has answered, off the decision path and in
// batches: until that write returns, LastSeen would not find it, and a
// token presented again at once from another network would pass the
// fingerprint check. So the sighting is first noted in memory
// (NoteSighting), where every later LastSeen of the process finds it, and
// is let go of once its write has returned (committed or failed).
//
// A LastSeen reads the pending sightings before the stored fingerprint and
// merges them: a sighting that commits in between is seen in both, never in
// neither. Its count may then include that sighting twice for a moment.

// MaxPending bounds the tokens with sightings pending in one store. It is a
// backstop: the recorder's bounded queue keeps the pending sightings far
// fewer. Past it, NoteSighting returns ErrPendingFull.
const MaxPending = 1 << 21

// ErrPendingFull means MaxPending tokens have sightings pending: the
// sighting is not noted (it can still be recorded).
var ErrPendingFull = errors.New("store: too many sightings pending")

const pendingShards = 64

// pending is the in-memory overlay of sightings not yet written, sharded
// by token hash.
type pending struct {
	seed   maphash.Seed
	n      atomic.Int64
	shards [pendingShards]pendingShard
}

type pendingShard struct {
	mu sync.Mutex
	m  map[string]*pendingEntry
}

// pendingEntry is the sightings of one token noted and not yet let go of,
// folded into one fingerprint; refs counts them.
type pendingEntry struct {
	fp   Fingerprint
	refs int
}

func newPending() *pending { return &pending{seed: maphash.MakeSeed()} }

func (p *pending) shard(tokenHash string) *pendingShard {
	return &p.shards[maphash.String(p.seed, tokenHash)%pendingShards]
}

// note adds seen (a Fingerprint of one sighting) to tokenHash's pending
// sightings. release takes it out again; it may be called more than once.
func (p *pending) note(tokenHash string, seen Fingerprint) (release func(), err error) {
	sh := p.shard(tokenHash)
	sh.mu.Lock()
	e := sh.m[tokenHash]
	if e == nil {
		if p.n.Load() >= MaxPending {
			sh.mu.Unlock()
			return func() {}, ErrPendingFull
		}
		if sh.m == nil {
			sh.m = make(map[string]*pendingEntry)
		}
		e = &pendingEntry{fp: seen}
		sh.m[tokenHash] = e
		p.n.Add(1)
	} else {
		e.fp = mergeFingerprints(e.fp, seen)
	}
	e.refs++
	sh.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		sh.mu.Lock()
		if e.refs--; e.refs == 0 && sh.m[tokenHash] == e {
			delete(sh.m, tokenHash)
			p.n.Add(-1)
		}
		sh.mu.Unlock()
	}, nil
}

// get returns the pending sightings of tokenHash, folded, unless the token
// expired at or before now (ns).
func (p *pending) get(tokenHash string, now int64) (Fingerprint, bool) {
	if p.n.Load() == 0 {
		return Fingerprint{}, false
	}
	sh := p.shard(tokenHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[tokenHash]
	if e == nil || e.fp.ExpiresAt.UnixNano() <= now {
		return Fingerprint{}, false
	}
	// The entry keeps the client of sightings already let go of (they are
	// stored by then); it counts only those still pending.
	fp := e.fp
	fp.Count = uint64(e.refs)
	return fp, true
}

// len is the number of tokens with sightings pending.
func (p *pending) len() int { return int(p.n.Load()) }

// withPending folds the pending sightings read before a stored fingerprint
// into it.
func withPending(stored Fingerprint, found bool, pend Fingerprint, pending bool) (Fingerprint, bool) {
	switch {
	case !pending:
		return stored, found
	case !found:
		return pend, true
	}
	return mergeFingerprints(stored, pend), true
}

// mergeFingerprints folds the sightings of b into a: counts add up, the
// first sighting is the earlier one, the latest client is the one of the
// later last sighting (b's on a tie), and the later expiry holds.
func mergeFingerprints(a, b Fingerprint) Fingerprint {
	fp := a
	fp.Count += b.Count
	if b.FirstSeen.Before(fp.FirstSeen) {
		fp.FirstSeen = b.FirstSeen
	}
	if !b.LastSeen.Before(fp.LastSeen) {
		fp.LastSeen, fp.IP, fp.Prefix, fp.UAHash = b.LastSeen, b.IP, b.Prefix, b.UAHash
	}
	if b.ExpiresAt.After(fp.ExpiresAt) {
		fp.ExpiresAt = b.ExpiresAt
	}
	return fp
}

// sightingOf checks a sighting as RecordFingerprint stores it (At zero:
// now) and returns it as a Fingerprint of one sighting.
func sightingOf(s Sighting, now time.Time, network func(netip.Addr) (string, string)) (Fingerprint, error) {
	if s.At.IsZero() {
		s.At = now
	}
	s.At = normTime(s.At)
	if _, err := nanos("seen at", s.At); err != nil {
		return Fingerprint{}, err
	}
	if _, err := checkExpiry("expires_at", s.ExpiresAt, now); err != nil {
		return Fingerprint{}, err
	}
	ip, prefix := network(s.IP)
	return Fingerprint{
		FirstSeen: s.At,
		LastSeen:  s.At,
		IP:        ip,
		Prefix:    prefix,
		UAHash:    HashUserAgent(s.UserAgent),
		Count:     1,
		ExpiresAt: normTime(s.ExpiresAt),
	}, nil
}
