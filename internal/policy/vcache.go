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
	// frames map a reference's hash to 1 + the index in entries of the
	// last entry put with that hash; entries with the same hash are
	// chained through next.
	frames  []map[int]int
	depth   int
	entries []ventry
	// refs holds copies of the references put: OPA puts slices of a buffer
	// it goes on reusing.
	refs []*ast.Term
}

type ventry struct {
	ref       ast.Ref
	value     *ast.Term
	undefined bool
	next      int
}

var _ topdown.VirtualCache = (*vcache)(nil)

var vcachePool = sync.Pool{New: func() any { return &vcache{frames: []map[int]int{{}}} }}

// vcacheCap bounds the entries and references a pooled cache keeps: an
// evaluation that needed more gives its buffers up.
const vcacheCap = 1 << 14

func getVCache() *vcache {
	return vcachePool.Get().(*vcache)
}

// putVCache empties c and returns it to the pool.
func putVCache(c *vcache) {
	for i := range c.frames {
		clear(c.frames[i])
	}
	c.depth = 0
	if cap(c.refs) > vcacheCap || cap(c.entries) > vcacheCap {
		c.refs, c.entries = nil, nil
	}
	clear(c.refs)
	c.refs = c.refs[:0]
	clear(c.entries)
	c.entries = c.entries[:0]
	vcachePool.Put(c)
}

func (c *vcache) Push() {
	c.depth++
	if c.depth == len(c.frames) {
		c.frames = append(c.frames, map[int]int{})
	}
}

func (c *vcache) Pop() {
	clear(c.frames[c.depth])
	c.depth--
}

// find returns the entry of the current frame for ref, nil when none.
func (c *vcache) find(h int, ref ast.Ref) *ventry {
	for i := c.frames[c.depth][h]; i != 0; {
		e := &c.entries[i-1]
		if e.ref.Equal(ref) {
			return e
		}
		i = e.next
	}
	return nil
}

func (c *vcache) Get(ref ast.Ref) (*ast.Term, bool) {
	e := c.find(ref.Hash(), ref)
	switch {
	case e == nil:
		return nil, false
	case e.undefined:
		return nil, true
	}
	return e.value, false
}

func (c *vcache) Put(ref ast.Ref, value *ast.Term) {
	h := ref.Hash()
	if e := c.find(h, ref); e != nil {
		if value != nil {
			e.value = value
		} else {
			e.undefined = true
		}
		return
	}
	start := len(c.refs)
	c.refs = append(c.refs, ref...)
	f := c.frames[c.depth]
	c.entries = append(c.entries, ventry{ref: ast.Ref(c.refs[start:len(c.refs):len(c.refs)]), value: value, undefined: value == nil, next: f[h]})
	f[h] = len(c.entries)
}

// Keys returns the references of the current frame that have a value.
func (c *vcache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, head := range c.frames[c.depth] {
		for i := head; i != 0; {
			e := &c.entries[i-1]
			if e.value != nil {
				keys = append(keys, e.ref)
			}
			i = e.next
		}
	}
	return keys
}
