package token

import (
	"sync"
	"time"
)

// DefaultCacheSize is the number of verified tokens kept when
// Options.CacheSize is 0, and DefaultCacheBytes the bound of their
// estimated heap when Options.CacheBytes is 0.
const (
	DefaultCacheSize  = 100_000
	DefaultCacheBytes = 64 << 20
)

// evictionSample is how many entries an insertion into a full cache looks
// at to choose a victim.
const evictionSample = 8

// cacheEntry is a verified token. Failures are never cached.
type cacheEntry struct {
	tok *Token
	// until is when the entry stops counting: exp plus skew for a JWT,
	// the introspection TTL for an opaque token.
	until time.Time
	// iss and thumbprint bind a JWT entry to the key that verified it.
	iss        *issuer
	thumbprint string
	// size is entryBytes(tok), set by put.
	size int64
}

// tokenCache maps SHA-256(token) to its verification result. It is bounded
// in entries and in the estimated heap of its entries (entryBytes):
// inserting into a full cache evicts an expired entry if the sample finds
// one, else the sampled entry that expires first, until the new one fits.
// An entry larger than a sixteenth of the byte bound is not kept.
type tokenCache struct {
	mu       sync.RWMutex
	max      int
	maxBytes int64
	bytes    int64
	m        map[[32]byte]*cacheEntry
}

func newTokenCache(size int, maxBytes int64) *tokenCache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &tokenCache{max: size, maxBytes: maxBytes, m: make(map[[32]byte]*cacheEntry)}
}

func (c *tokenCache) get(key [32]byte) (*cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *tokenCache) put(key [32]byte, e *cacheEntry, now time.Time) {
	e.size = entryBytes(e.tok)
	if e.size > c.maxBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, exists := c.m[key]; exists {
		c.bytes -= old.size
		delete(c.m, key)
	}
	for len(c.m) > 0 && (len(c.m) >= c.max || c.bytes+e.size > c.maxBytes) {
		c.evictLocked(now)
	}
	c.m[key] = e
	c.bytes += e.size
}

// evictLocked removes one entry; map iteration order makes the sample
// random.
func (c *tokenCache) evictLocked(now time.Time) {
	var (
		victim [32]byte
		first  time.Time
		n      int
	)
	for k, e := range c.m {
		if !e.until.After(now) {
			c.deleteLocked(k, e)
			return
		}
		if n == 0 || e.until.Before(first) {
			victim, first = k, e.until
		}
		if n++; n == evictionSample {
			break
		}
	}
	if n > 0 {
		c.deleteLocked(victim, c.m[victim])
	}
}

func (c *tokenCache) deleteLocked(k [32]byte, e *cacheEntry) {
	delete(c.m, k)
	c.bytes -= e.size
}

func (c *tokenCache) remove(key [32]byte) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		c.deleteLocked(key, e)
	}
	c.mu.Unlock()
}

// sweepBatch bounds the entries one write-lock of a sweep removes, so that
// verifications wait on it for microseconds, not for a whole scan.
const sweepBatch = 256

// sweep removes the entries that no longer count (until passed), so that
// the memory of expired tokens is given back without waiting for the cache
// to fill. The scan holds the read lock (lookups go on); the removal takes
// the write lock a batch at a time and checks each entry again. It returns
// how many it removed.
func (c *tokenCache) sweep(now time.Time) int {
	var expired [][32]byte
	c.mu.RLock()
	for k, e := range c.m {
		if !e.until.After(now) {
			expired = append(expired, k)
		}
	}
	c.mu.RUnlock()
	removed := 0
	for len(expired) > 0 {
		n := min(len(expired), sweepBatch)
		c.mu.Lock()
		for _, k := range expired[:n] {
			if e, ok := c.m[k]; ok && !e.until.After(now) {
				c.deleteLocked(k, e)
				removed++
			}
		}
		c.mu.Unlock()
		expired = expired[n:]
	}
	return removed
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// CacheStats describe the verified-token cache.
type CacheStats struct {
	// Entries and Bytes are what it holds now (Bytes by estimate).
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
	// MaxEntries and MaxBytes are its bounds.
	MaxEntries int   `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
}

func (c *tokenCache) stats() CacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return CacheStats{Entries: len(c.m), Bytes: c.bytes, MaxEntries: c.max, MaxBytes: c.maxBytes}
}
