package policy

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// baseCache keeps the documents an evaluation read from a version's store
// (data.pdp, the values of folded rules) for every later evaluation of the
// version: a version's store never changes once the version is built, and
// OPA otherwise reads and caches them again for each evaluation. Readers
// take no lock: the map is replaced, never changed, when a document is
// added. It holds at most baseCacheEntries documents, so that references
// built from input (data.x[input.y] in a policy that is not folded) cannot
// grow it without bound; beyond that, reads go to the store as before.
type baseCache struct {
	docs atomic.Pointer[map[int][]baseEntry]
	mu   sync.Mutex // held by writers
	n    int
}

type baseEntry struct {
	ref   ast.Ref
	value ast.Value
}

const baseCacheEntries = 256

var _ topdown.BaseCache = (*baseCache)(nil)

func newBaseCache() *baseCache {
	c := &baseCache{}
	c.docs.Store(&map[int][]baseEntry{})
	return c
}

func (c *baseCache) Get(ref ast.Ref) ast.Value {
	for _, e := range (*c.docs.Load())[ref.Hash()] {
		if e.ref.Equal(ref) {
			return e.value
		}
	}
	return nil
}

func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	if value == nil || c.Get(ref) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= baseCacheEntries || c.Get(ref) != nil {
		return
	}
	docs := maps.Clone(*c.docs.Load())
	h := ref.Hash()
	// A fresh slice: readers may hold the old one.
	docs[h] = append(append([]baseEntry(nil), docs[h]...), baseEntry{ref: ref.Copy(), value: value})
	c.n++
	c.docs.Store(&docs)
}
