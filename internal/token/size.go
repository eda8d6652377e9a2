package token

import (
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Heap sizes of the parts of a cache entry, as the Go allocator rounds
// them (64-bit).
const (
	// sizeMapSlot is one slot of the cache's map (key, pointer, control
	// and load-factor slack).
	sizeMapSlot = 56
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

// entryBytes estimates the heap a cache entry for tok holds: the map slot,
// the entry, the Token struct, its hash and scope slice, and its claims.
// The strings of Subject, ClientID, JTI and the scopes are slices of the
// claims' strings and are counted there.
func entryBytes(tok *Token) int64 {
	n := int64(sizeMapSlot + unsafe.Sizeof(cacheEntry{}) + unsafe.Sizeof(Token{}))
	n += int64(len(tok.Hash)) + int64(len(tok.Alg)+len(tok.Typ)+len(tok.Kid))
	n += int64(cap(tok.Scopes)) * int64(unsafe.Sizeof(""))
	n += int64(len(tok.Confirmation.JKT) + len(tok.Confirmation.X5TS256))
	if tok.Claims != nil {
		n += valueBytes(tok.Claims, 0)
	}
	return n
}

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
