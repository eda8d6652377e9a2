package token

import (
	"unsafe"

	"github.com/tokenguard/pdp/internal/jsonast"
)

// sizeMapSlot is the heap of one slot of the cache's map (key, pointer,
// control and load-factor slack).
const sizeMapSlot = 56

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
		n += jsonast.HeapBytes(tok.Claims)
	}
	return n
}
