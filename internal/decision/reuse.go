package decision

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/jsonast"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/token"
)

// Decision reuse.
//
// A bearer token is typically presented many times during its life, each
// time with the same claims, to the same few routes, from the same client.
// The policy's answer to such a request depends only on
//
//   - the policy version,
//   - the verified token (the very claims object the token verifier
//     returned: a re-verified or re-introspected token has new ones),
//   - the input fields the policy reads (policy.Reuse: the request's method,
//     URL, client address and certificate, the headers it names, the
//     context),
//   - input.now, through the policy's valid_until,
//   - and what the pdp.* built-ins answer (revocations, fingerprints).
//
// So the engine keeps each such decision, keyed by a SHA-256 of everything
// but the time and the store state, and reuses it for a later request with
// the same key while the policy version and the token object are the same,
// now is before the decision's valid_until (and its ttl), and every pdp.*
// answer it was made on is still what the store says: those look-ups run
// again on every reuse, so a revocation applies to the very next request.
//
// A DPoP proof is verified, and its jti spent, on every request before any
// of this: what the policy then reads of it (present, valid, the key's
// thumbprint, the error) is part of the key, so a fresh valid proof of the
// same key reuses the decision. A decision is not kept when a server nonce
// was issued (it is in the answer), at the token endpoint (refresh families
// move on every use), when it asked for effects, when the evaluation called
// another nondeterministic built-in (time.now_ns, http.send, ...), or when
// the policy version forbids reuse (see policy.Reuse).
type reuseCache struct {
	ttl time.Duration
	// spread: a decision kept under the version a new one replaced is
	// reused until its own random moment within spread of the activation
	// (reuseEntry.grace), so that the replica re-evaluates its warm tokens
	// over that time rather than all at once.
	spread time.Duration
	shards [reuseShards]reuseShard
	hits   atomic.Int64
	misses atomic.Int64
	// maxEntries and maxBytes are the bounds, split evenly over the shards.
	maxEntries int
	maxBytes   int64
}

const reuseShards = 32

// sightingEvery is how often a reused decision records the token's sighting:
// at most once a minute per kept decision, so that fingerprints of busy
// tokens cost one write a minute, not one per request. last_seen and count
// are that coarse.
const sightingEvery = time.Minute

type reuseShard struct {
	mu       sync.RWMutex
	entries  map[reuseKey]*reuseEntry
	max      int
	maxBytes int64
	bytes    int64
}

type reuseKey [sha256.Size]byte

// reuseEntry is one kept decision: what answers the request again and what
// says whether it still may. It is never modified after it is stored,
// except for the time of the last recorded sighting.
type reuseEntry struct {
	version uint64
	// verification is the verified token's Token.Verification: the
	// verifier hands out the same one while the token stays in its cache,
	// a new one when it verified or introspected the token again. The
	// claims themselves are the token cache's to keep.
	verification uint64
	context      ast.Object
	until        time.Time
	deps         *builtins.Deps
	answer       keptAnswer
	revision     string
	// answers are what the pdp.* built-ins answered, kept for the
	// decision logs of the decisions that reuse it (nil when decisions
	// are not logged). They hold for as long as the entry does: the entry
	// is reused only while every one of them is still the store's.
	answers  topdown.NDBCache
	recorded atomic.Int64
	// grace is how long after the next activation this decision may still
	// be reused: a random fraction of the cache's spread, drawn when kept.
	grace time.Duration
	// size is the estimate of the heap the entry holds (entryBytes).
	size int64
}

// keptAnswer is the part of a policy result a reused decision answers
// with; effects, valid_until and the built-ins called were looked at
// when it was kept.
type keptAnswer struct {
	allow             bool
	status            int
	reasons, warnings []policy.Reason
	headers, upstream map[string]string
	grantType, module string
}

func packAnswer(res policy.Result) keptAnswer {
	return keptAnswer{
		allow: res.Allow, status: res.Status,
		reasons: slices.Clip(res.Reasons), warnings: slices.Clip(res.Warnings),
		headers: res.Headers, upstream: res.UpstreamHeaders,
		grantType: res.GrantType, module: res.Module,
	}
}

func (a *keptAnswer) result() policy.Result {
	return policy.Result{
		Allow: a.allow, Status: a.status, Reasons: a.reasons, Warnings: a.warnings,
		Headers: a.headers, UpstreamHeaders: a.upstream, GrantType: a.grantType, Module: a.module,
	}
}

// Heap sizes used by entryBytes (64-bit, as the allocator rounds them).
const (
	// sizeReuseSlot is one slot of a shard's map: the key, the pointer,
	// control bytes and load-factor slack.
	sizeReuseSlot = 56
	// sizeSmallMap is a map of up to 8 entries of string to string (its
	// header and one group); sizeMapGroup each further group of 8.
	sizeSmallMap = 320
	sizeMapGroup = 272
)

// entryBytes estimates the heap e holds: the entry, its map slot, the
// answer's reasons and header maps, the recorded store answers and the
// request context it compares. The revision string is the policy
// version's, shared by all its decisions.
func entryBytes(e *reuseEntry) int64 {
	n := int64(sizeReuseSlot + unsafe.Sizeof(reuseEntry{}))
	n += reasonsBytes(e.answer.reasons) + reasonsBytes(e.answer.warnings)
	n += mapBytes(e.answer.headers) + mapBytes(e.answer.upstream)
	n += int64(len(e.answer.grantType) + len(e.answer.module))
	if e.deps != nil {
		n += e.deps.HeapBytes()
	}
	if e.context != nil {
		n += jsonast.HeapBytes(e.context)
	}
	for name, obj := range e.answers {
		n += int64(sizeSmallMap/8+len(name)) + jsonast.HeapBytes(obj)
	}
	return n
}

func reasonsBytes(rs []policy.Reason) int64 {
	n := int64(cap(rs)) * int64(unsafe.Sizeof(policy.Reason{}))
	for _, r := range rs {
		n += int64(len(r.Code) + len(r.Message))
	}
	return n
}

func mapBytes(m map[string]string) int64 {
	if len(m) == 0 {
		return 0
	}
	n := int64(sizeSmallMap + (len(m)-1)/8*sizeMapGroup)
	for k, v := range m {
		n += int64(len(k) + len(v))
	}
	return n
}

// ReuseStats count decisions answered from, and evaluated beside, kept
// ones, and say what the kept ones take.
type ReuseStats struct {
	Reused    int64 `json:"reused"`
	Evaluated int64 `json:"evaluated"`
	// Entries and Bytes are the decisions kept now and the estimate of
	// the heap they hold; MaxEntries and MaxBytes their bounds.
	Entries    int   `json:"entries"`
	Bytes      int64 `json:"bytes"`
	MaxEntries int   `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
}

// DefaultReuseBytes bounds the kept decisions' heap when
// Options.ReuseBytes is 0.
const DefaultReuseBytes = 32 << 20

func newReuseCache(maxEntries int, maxBytes int64, ttl time.Duration) *reuseCache {
	if maxBytes <= 0 {
		maxBytes = DefaultReuseBytes
	}
	c := &reuseCache{ttl: ttl, maxEntries: maxEntries, maxBytes: maxBytes}
	per, perBytes := max(maxEntries/reuseShards, 1), max(maxBytes/reuseShards, 1)
	for i := range c.shards {
		c.shards[i] = reuseShard{entries: make(map[reuseKey]*reuseEntry), max: per, maxBytes: perBytes}
	}
	return c
}

func (c *reuseCache) shard(k reuseKey) *reuseShard { return &c.shards[k[0]%reuseShards] }

func (c *reuseCache) get(k reuseKey) *reuseEntry {
	s := c.shard(k)
	s.mu.RLock()
	e := s.entries[k]
	s.mu.RUnlock()
	return e
}

// put keeps e under k, evicting arbitrary entries of k's shard (Go
// randomises map order) until both of the shard's bounds hold. An entry
// larger than a sixteenth of a shard's byte bound is not kept.
func (c *reuseCache) put(k reuseKey, e *reuseEntry) {
	e.size = entryBytes(e)
	s := c.shard(k)
	if e.size > s.maxBytes/16 {
		return
	}
	s.mu.Lock()
	if old, ok := s.entries[k]; ok {
		delete(s.entries, k)
		s.bytes -= old.size
	}
	for old, oe := range s.entries {
		if len(s.entries) < s.max && s.bytes+e.size <= s.maxBytes {
			break
		}
		delete(s.entries, old)
		s.bytes -= oe.size
	}
	s.entries[k] = e
	s.bytes += e.size
	s.mu.Unlock()
}

// reuseSweepEvery is how often the engine removes kept decisions that can
// no longer be reused.
const reuseSweepEvery = 30 * time.Second

// sweep removes the kept decisions that lookup would refuse whatever the
// request: past their until, or made by a policy version that is neither
// the active one nor, within its grace, the one it replaced. Without it they stay until their key is used again or the
// shard is full, holding memory a replica has no use for (every policy
// change leaves a whole cache of them). Each shard is scanned under its
// read lock and its dead entries removed under the write lock, checked
// again. It returns how many it removed.
func (c *reuseCache) sweep(now time.Time, r policy.Reuse) int {
	dead := func(e *reuseEntry) bool { return !now.Before(e.until) || !e.current(r, now) }
	removed := 0
	var keys []reuseKey
	for i := range c.shards {
		s := &c.shards[i]
		keys = keys[:0]
		s.mu.RLock()
		for k, e := range s.entries {
			if dead(e) {
				keys = append(keys, k)
			}
		}
		s.mu.RUnlock()
		if len(keys) == 0 {
			continue
		}
		s.mu.Lock()
		for _, k := range keys {
			if e, ok := s.entries[k]; ok && dead(e) {
				delete(s.entries, k)
				s.bytes -= e.size
				removed++
			}
		}
		s.mu.Unlock()
	}
	return removed
}

func (c *reuseCache) sweepLoop(ctx context.Context, now func() time.Time, reuse func() policy.Reuse) {
	t := time.NewTicker(reuseSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sweep(now(), reuse())
		}
	}
}

func (c *reuseCache) stats() ReuseStats {
	st := ReuseStats{Reused: c.hits.Load(), Evaluated: c.misses.Load(), MaxEntries: c.maxEntries, MaxBytes: c.maxBytes}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		st.Entries += len(s.entries)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}

// reusable says whether a decision for this request may be kept or reused
// at all, before anything is evaluated.
func reusable(tok *token.Token, proof proofResult, te *tokenEndpointResult, r policy.Reuse) bool {
	return r.Allowed && te == nil && tok != nil && proof.nonce == ""
}

// keyOf hashes what the policy may read of this request, besides the
// token's identity: length-prefixed fields, so that no two requests share an
// encoding.
func keyOf(req *Request, cred credential, tok *token.Token, proof proofResult, r policy.Reuse) reuseKey {
	bp := keyBufs.Get().(*[]byte)
	b := binary.BigEndian.AppendUint64((*bp)[:0], r.Version)
	b = field(b, cred.scheme)
	b = field(b, tok.Hash)
	if m := req.Message; m != nil {
		// A message and a request never share a key: the marker and the
		// message's fields, each length-prefixed.
		b = append(b, 'm')
		b = field(b, m.Broker)
		b = field(b, m.Operation)
		b = field(b, m.Destination)
		b = field(b, m.VHost)
	} else {
		b = append(b, 'r')
	}
	b = field(b, req.Method)
	u := req.URL
	b = field(b, u.Scheme)
	b = field(b, u.Host)
	b = field(b, u.Path)
	b = field(b, u.RawPath)
	b = field(b, u.RawQuery)
	if req.RemoteIP.IsValid() {
		a := req.RemoteIP.As16()
		b = append(b, 16)
		b = append(b, a[:]...)
		b = field(b, req.RemoteIP.Zone())
	} else {
		b = append(b, 0)
	}
	b = field(b, req.ClientCertSHA256)
	// What the policy learns of the DPoP proof, which was verified and
	// spent before this: a fresh valid proof of the same key reads the same.
	b = append(b, boolByte(proof.present), boolByte(proof.valid))
	b = field(b, proof.jkt)
	if proof.err != nil {
		b = field(b, proof.err.Code)
		b = field(b, proof.err.Message)
	} else {
		b = append(b, 0xff)
	}
	if r.AllHeaders {
		var stack [32]string
		names := stack[:0]
		for name := range req.Headers {
			if !hiddenHeaders[name] {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		b = binary.BigEndian.AppendUint32(b, uint32(len(names)))
		for _, name := range names {
			b = header(b, name, req.Headers[name])
		}
	} else {
		// The names are the version's; whether each is there counts too
		// (an absent header and one without values read differently).
		for _, name := range r.Headers {
			vals, ok := req.Headers[name]
			b = append(b, boolByte(ok && !hiddenHeaders[name]))
			if ok && !hiddenHeaders[name] {
				b = header(b, name, vals)
			}
		}
	}
	if r.Context && req.Context != nil {
		// the entry keeps the context and compares it exactly
		b = binary.BigEndian.AppendUint64(b, uint64(req.Context.Hash()))
	}
	k := reuseKey(sha256.Sum256(b))
	if cap(b) <= maxKeyBuf {
		*bp = b
		keyBufs.Put(bp)
	}
	return k
}

const maxKeyBuf = 64 << 10

var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func field(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func header(b []byte, name string, vals []string) []byte {
	b = field(b, name)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		b = field(b, v)
	}
	return b
}

// lookup returns the kept decision for k if it may answer this request now:
// same policy version and token object, within its validity, the same
// context, and every pdp.* answer unchanged. A failed store look-up is no
// reuse: the full evaluation that follows fails closed on its own.
func (c *reuseCache) lookup(ctx context.Context, k reuseKey, req *Request, tok *token.Token, r policy.Reuse, now time.Time) *reuseEntry {
	e := c.get(k)
	if e == nil || !e.current(r, now) || e.verification != tok.Verification || !now.Before(e.until) {
		return nil
	}
	if r.Context && !sameContext(e.context, req.Context) {
		return nil
	}
	if ok, err := e.deps.Unchanged(ctx); err != nil || !ok {
		return nil
	}
	return e
}

// inSpread: the activation of r's version is younger than the spread, so a
// decision kept under the version it replaced may still be reused.
func (c *reuseCache) inSpread(r policy.Reuse, now time.Time) bool {
	return c.spread > 0 && r.Previous != 0 && now.Before(r.Activated.Add(c.spread))
}

// current: the decision was made by the active policy version, or by the
// one it replaced and the activation is younger than the decision's grace.
func (e *reuseEntry) current(r policy.Reuse, now time.Time) bool {
	return e.version == r.Version ||
		(e.version == r.Previous && e.grace > 0 && now.Before(r.Activated.Add(e.grace)))
}

func sameContext(a, b ast.Object) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Compare(b) == 0
}

// keep stores the decision just evaluated, if it may be reused: its token
// came from the verifier (tok.Verification is set), it asked for no effects, called no nondeterministic built-in but the pdp.* ones,
// and says how long it holds when the policy reads input.now.
// With logged, it keeps the built-ins' answers for the decision logs too.
func (c *reuseCache) keep(k reuseKey, req *Request, tok *token.Token, r policy.Reuse, deps *builtins.Deps, res policy.Result, rev string, now time.Time, logged bool) {
	if tok.Verification == 0 || len(res.Effects) > 0 || (r.Now && !res.ValidUntilSet) {
		return
	}
	for _, name := range res.Nondeterministic {
		if name != builtins.RevocationName && name != builtins.LastSeenName {
			return
		}
	}
	// A little jitter, so that decisions kept in a burst (a restart, a
	// new policy version) do not all expire, and evaluate, at once.
	until := now.Add(c.ttl - rand.N(c.ttl/8+1))
	if !res.ValidUntil.IsZero() && res.ValidUntil.Before(until) {
		until = res.ValidUntil
	}
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(until) {
		until = tok.ExpiresAt
	}
	if !now.Before(until) {
		return
	}
	e := &reuseEntry{
		version: r.Version, verification: tok.Verification, until: until, deps: deps,
		answer: packAnswer(res), revision: rev,
	}
	if logged {
		e.answers = res.NDBuiltinCache
	}
	if r.Context {
		e.context = req.Context
	}
	if c.spread > 0 {
		e.grace = rand.N(c.spread) + 1
	}
	e.recorded.Store(now.UnixNano())
	c.put(k, e)
}
