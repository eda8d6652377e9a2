package jsonast

import "github.com/open-policy-agent/opa/v1/ast"

// Heap sizes of the parts of an ast value, as the Go allocator rounds them
// (64-bit).
const (
	// sizeTerm is an *ast.Term; sizeBoxed a string or number boxed in an
	// interface (its header).
	sizeTerm  = 24
	sizeBoxed = 16
	// sizeObject is an object's own struct and its map and key slice
	// headers; sizeMember is one member (objectElem, map slot, key slice
	// slot) beside its key and value terms.
	sizeObject = 96
	sizeMember = 64
	// sizeArray is an array's struct; sizeElem one element (pointer and
	// hash).
	sizeArray = 64
	sizeElem  = 16
	// sizeString is a string's data beyond its length: JSON quotes and
	// punctuation of the decoded payload the strings are slices of.
	sizeString = 4
)

// HeapBytes estimates the heap an ast value holds (its own term not
// counted): what a cache that keeps parsed claims should charge for them.
// Strings are counted with their length, so a value whose strings share
// one decoded document is charged about that document's size.
func HeapBytes(v ast.Value) int64 { return valueBytes(v, 0) }

// maxSizeDepth bounds the recursion of valueBytes; claims are parsed with
// a smaller depth limit.
const maxSizeDepth = 64

// valueBytes estimates the heap of an ast value (without its term).
func valueBytes(v ast.Value, depth int) int64 {
	if depth > maxSizeDepth {
		return 0
	}
	switch v := v.(type) {
	case ast.String:
		return sizeBoxed + int64(len(v)) + sizeString
	case ast.Number:
		return sizeBoxed + int64(len(v))
	case ast.Object:
		n := int64(sizeObject)
		v.Foreach(func(k, val *ast.Term) {
			n += sizeMember + 2*sizeTerm + valueBytes(k.Value, depth+1) + valueBytes(val.Value, depth+1)
		})
		return n
	case *ast.Array:
		n := int64(sizeArray)
		v.Foreach(func(e *ast.Term) {
			n += sizeElem + sizeTerm + valueBytes(e.Value, depth+1)
		})
		return n
	default: // booleans, null: no heap of their own
		return 0
	}
}
