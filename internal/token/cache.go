package token

import (
	"sync"
	"time"
)

// DefaultCacheSize is the number of verified tokens kept when
// Options.CacheSize is 0.
const DefaultCacheSize = 100_000

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
}

// tokenCache maps SHA-256(token) to its verification result. It is bounded:
// inserting into a full cache evicts an expired entry if the sample finds
// one, else the sampled entry that expires first.
type tokenCache struct {
	mu  sync.RWMutex
	max int
	m   map[[32]byte]*cacheEntry
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &tokenCache{max: size, m: make(map[[32]byte]*cacheEntry)}
}

func (c *tokenCache) get(key [32]byte) (*cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	return e, ok
}

func (c *tokenCache) put(key [32]byte, e *cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[key]; !exists && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[key] = e
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
			delete(c.m, k)
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
		delete(c.m, victim)
	}
}

func (c *tokenCache) remove(key [32]byte) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
