package ssf

import (
	"sync"
	"time"
)

// jtiMemory remembers the SETs already applied, by jti hash, for ttl and
// up to capacity entries; the oldest entry goes first when it is full.
// Forgetting early is harmless: applying a SET twice writes the same
// revocations again.
type jtiMemory struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]jtiEntry
	ring []string // insertion order; ring[next] is the oldest when full
	next int
}

type jtiEntry struct {
	until time.Time
	slot  int
}

func newJTIMemory(capacity int, ttl time.Duration) *jtiMemory {
	return &jtiMemory{ttl: ttl, seen: make(map[string]jtiEntry), ring: make([]string, capacity)}
}

// has reports whether key was remembered and has not been forgotten.
func (m *jtiMemory) has(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.seen[key]
	return ok && now.Before(e.until)
}

// add remembers key until now + ttl.
func (m *jtiMemory) add(key string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.ring) == 0 {
		return
	}
	if e, ok := m.seen[key]; ok {
		e.until = now.Add(m.ttl)
		m.seen[key] = e
		return
	}
	if old := m.ring[m.next]; old != "" {
		if e, ok := m.seen[old]; ok && e.slot == m.next {
			delete(m.seen, old)
		}
	}
	m.ring[m.next] = key
	m.seen[key] = jtiEntry{until: now.Add(m.ttl), slot: m.next}
	m.next = (m.next + 1) % len(m.ring)
}
