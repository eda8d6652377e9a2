package natsauth

import (
	"sync"
	"time"

	"github.com/tokenguard/pdp/internal/store"
)

// connKey names one live connection: a server and the client's id on it.
type connKey struct {
	server string
	cid    uint64
}

// liveConn is what is kept about a connection the PDP authorized: enough
// to ask the store whether its token was revoked, never the token.
type liveConn struct {
	// ref is what CheckRevocation needs: issuer, subject, jti (or the
	// token's "sha256:" hash when it has none), session, client, iat.
	ref store.TokenRef
	// hash is the token's hash, for logs.
	hash string
	// expires is the user JWT's expiry: the server closes the connection
	// then, and the entry is dropped.
	expires time.Time
}

// tracker holds the live connections, at most max of them.
type tracker struct {
	mu    sync.Mutex
	max   int
	conns map[connKey]liveConn
}

func newTracker(max int) *tracker {
	return &tracker{max: max, conns: map[connKey]liveConn{}}
}

// add keeps c under k; false when the tracker is full even after dropping
// the entries expired at now. A connection seen again (the same server and
// client id: a re-authorization) replaces its entry.
func (t *tracker) add(k connKey, c liveConn, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[k]; !ok && len(t.conns) >= t.max {
		t.dropExpiredLocked(now)
		if len(t.conns) >= t.max {
			return false
		}
	}
	t.conns[k] = c
	return true
}

// remove forgets a connection (closed, or kicked).
func (t *tracker) remove(k connKey) {
	t.mu.Lock()
	delete(t.conns, k)
	t.mu.Unlock()
}

// dropExpired forgets the connections whose JWT expired at now (the server
// closed them) and reports how many.
func (t *tracker) dropExpired(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropExpiredLocked(now)
}

func (t *tracker) dropExpiredLocked(now time.Time) int {
	n := 0
	for k, c := range t.conns {
		if !c.expires.After(now) {
			delete(t.conns, k)
			n++
		}
	}
	return n
}

// snapshot copies the live connections.
func (t *tracker) snapshot() map[connKey]liveConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[connKey]liveConn, len(t.conns))
	for k, c := range t.conns {
		out[k] = c
	}
	return out
}

// len is the number of connections tracked.
func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
