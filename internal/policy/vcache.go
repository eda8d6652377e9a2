package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// vcache is OPA's virtual-document cache (the values of the rules an
// evaluation has computed), kept in a pool and reused from one evaluation
// to the next: OPA's own builds a tree of small maps for every evaluation,
// about a quarter of a decision's allocations. It behaves as
// topdown.NewVirtualCache does: a stack of frames (a `with` pushes one), each
// mapping a reference to a value or to "undefined". An evaluation owns it
// from getVCache to putVCache; nothing of it outlives the evaluation.
type vcache struct {
	frames []vframe
	depth  int
	// refs holds copies of the references put: OPA puts slices of a buffer
	// it goes on reusing.
	refs []*ast.Term
}

// vframe maps a reference's hash to the entries with that hash.
type vframe map[int][]ventry

type ventry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
}

var _ topdown.VirtualCache = (*vcache)(nil)

var vcachePool = sync.Pool{New: func() any { return &vcache{frames: []vframe{{}}} }}

// vcacheRefsCap bounds the reference buffer a pooled cache keeps: an
// evaluation that needed more gives it up.
const vcacheRefsCap = 1 << 14

func getVCache() *vcache {
	return vcachePool.Get().(*vcache)
}

// putVCache empties c and returns it to the pool.
func putVCache(c *vcache) {
	for i := range c.frames {
		clear(c.frames[i])
	}
	c.depth = 0
	if cap(c.refs) > vcacheRefsCap {
		c.refs = nil
	}
	clear(c.refs)
	c.refs = c.refs[:0]
	vcachePool.Put(c)
}

func (c *vcache) Push() {
	c.depth++
	if c.depth == len(c.frames) {
		c.frames = append(c.frames, vframe{})
	}
}

func (c *vcache) Pop() {
	clear(c.frames[c.depth])
	c.depth--
}

func (c *vcache) Get(ref ast.Ref) (*ast.Term, bool) {
	for _, e := range c.frames[c.depth][ref.Hash()] {
		if e.ref.Equal(ref) {
			if e.undefined {
				return nil, true
			}
			return e.value, false
		}
	}
	return nil, false
}

func (c *vcache) Put(ref ast.Ref, value *ast.Term) {
	f := c.frames[c.depth]
	h := ref.Hash()
	entries := f[h]
	for i := range entries {
		if entries[i].ref.Equal(ref) {
			if value != nil {
				entries[i].value = value
			} else {
				entries[i].undefined = true
			}
			return
		}
	}
	start := len(c.refs)
	c.refs = append(c.refs, ref...)
	e := ventry{ref: ast.Ref(c.refs[start:len(c.refs):len(c.refs)]), value: value, undefined: value == nil}
	f[h] = append(entries, e)
}

// Keys returns the references of the current frame that have a value.
func (c *vcache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, entries := range c.frames[c.depth] {
		for _, e := range entries {
			if e.value != nil {
				keys = append(keys, e.ref)
			}
		}
	}
	return keys
}
