package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"github.com/tokenguard/pdp/internal/jose"
	"time"
)

// Server nonce layout: base64url(issued-at seconds, 8 bytes big-endian ||
// HMAC-SHA256(secret, label || issued-at)[:16]).
const (
	// MinNonceSecret is the shortest secret NewNonces accepts.
	MinNonceSecret = 32
	nonceMACSize   = 16
	nonceRawSize   = 8 + nonceMACSize
	// nonceLeeway is how far in the future a nonce's issue time may lie,
	// for replicas whose clocks disagree slightly.
	nonceLeeway = 5 * time.Second
	// nonceLabel separates nonce MACs from any other use of the secret.
	nonceLabel = "tokenguard dpop nonce v1\x00"
)

// nonceSize is the length of an encoded nonce.
var nonceSize = base64.RawURLEncoding.EncodedLen(nonceRawSize)

// Nonces issues and checks DPoP server nonces (RFC 9449 §8). They are
// stateless: a nonce carries its issue time and a MAC over it, so every
// replica that shares the secret accepts the nonces of the others, and
// nothing is stored. A nonce is valid for the TTL after it was issued; it
// may be used by several proofs in that time (each proof's jti is still
// single use). Nonces is immutable and safe for concurrent use.
type Nonces struct {
	secret []byte
	ttl    time.Duration
}

// NewNonces returns a nonce source keyed by secret (at least 32 bytes of
// random data, the same on every replica) whose nonces are valid for ttl.
func NewNonces(secret []byte, ttl time.Duration) (*Nonces, error) {
	if len(secret) < MinNonceSecret {
		return nil, errors.New("dpop: nonce secret must be at least 32 bytes")
	}
	if ttl < time.Second {
		return nil, errors.New("dpop: nonce ttl must be at least 1s")
	}
	return &Nonces{secret: append([]byte(nil), secret...), ttl: ttl}, nil
}

// TTL is how long a nonce stays valid after it was issued.
func (n *Nonces) TTL() time.Duration { return n.ttl }

// Issue returns a fresh nonce, for the DPoP-Nonce response header. Nonces
// issued in the same second are equal.
func (n *Nonces) Issue(now time.Time) string {
	var raw [nonceRawSize]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.Unix()))
	copy(raw[8:], n.mac(raw[:8]))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// Valid reports whether nonce was issued with this secret no longer than
// the TTL before now and not in the future (beyond a few seconds of clock
// difference between replicas). The MAC is compared in constant time.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	if n == nil || len(nonce) != nonceSize {
		return false
	}
	var raw [nonceRawSize]byte
	if m, err := jose.B64.Decode(raw[:], []byte(nonce)); err != nil || m != nonceRawSize {
		return false
	}
	if !hmac.Equal(n.mac(raw[:8]), raw[8:]) {
		return false
	}
	issued := binary.BigEndian.Uint64(raw[:8])
	if issued > uint64(now.Add(nonceLeeway).Unix()) {
		return false
	}
	return now.Sub(time.Unix(int64(issued), 0)) <= n.ttl
}

// mac returns the truncated MAC of the encoded issue time.
func (n *Nonces) mac(issued []byte) []byte {
	h := hmac.New(sha256.New, n.secret)
	h.Write([]byte(nonceLabel))
	h.Write(issued)
	return h.Sum(nil)[:nonceMACSize]
}
