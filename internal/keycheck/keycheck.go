// Package keycheck refuses public keys that must never verify a signature
// in the decision point: short or malformed RSA keys, RSA keys with the
// ROCA weakness (CVE-2017-15361), EC points off their curve, and Ed25519
// keys of small order. Every loader of verification keys (issuer JWKS, SSF
// transmitter JWKS, DPoP proof jwk) applies it, whatever process-wide
// settings the JOSE library was left with: OPA configures jwx to accept
// any RSA modulus and exponent.
package keycheck

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// RSA bounds. The upper modulus bound caps the cost of one verification;
// the upper exponent bound is what Go's crypto/rsa can use.
const (
	MinRSABits     = 2048
	MaxRSABits     = 8192
	MinRSAExponent = 3
	MaxRSAExponent = 1<<31 - 1
)

// ErrRefused is wrapped by every refusal of Check.
var ErrRefused = errors.New("key refused")

// refusal is a key refused for a reason that is safe to show (status pages,
// logs, DPoP error descriptions): it never contains key material.
type refusal struct{ reason string }

func (e *refusal) Error() string        { return e.reason }
func (e *refusal) Is(target error) bool { return target == ErrRefused }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

// Check returns nil for a public key that may verify signatures, else an
// error wrapping ErrRefused whose text names the reason:
//
//   - RSA: modulus of MinRSABits to MaxRSABits bits and odd; exponent odd,
//     MinRSAExponent to MaxRSAExponent (65537 is what issuers use; smaller
//     odd exponents are accepted because verification checks the whole
//     PKCS #1 / PSS encoding); modulus without the ROCA fingerprint.
//   - ECDSA: P-256, P-384 or P-521, and a point on that curve other than
//     the point at infinity.
//   - Ed25519: 32 bytes, the canonical encoding of a curve point that is
//     not of small order (a small-order key lets anyone forge signatures).
//
// Any other type is refused.
func Check(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return checkRSA(k)
	case *ecdsa.PublicKey:
		return checkEC(k)
	case ed25519.PublicKey:
		return checkEd25519(k)
	case nil:
		return refuse("no key")
	default:
		return refuse("key type %T is not a supported signature key", pub)
	}
}

func checkRSA(k *rsa.PublicKey) error {
	if k == nil || k.N == nil || k.N.Sign() <= 0 {
		return refuse("RSA key without a modulus")
	}
	if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		return refuse("RSA modulus of %d bits (%d to %d allowed)", bits, MinRSABits, MaxRSABits)
	}
	if k.N.Bit(0) == 0 {
		return refuse("RSA modulus is even")
	}
	if k.E < MinRSAExponent || k.E > MaxRSAExponent || k.E%2 == 0 {
		return refuse("RSA public exponent %d (odd, %d to %d allowed; 65537 expected)", k.E, MinRSAExponent, MaxRSAExponent)
	}
	if HasROCAFingerprint(k.N) {
		return refuse("RSA modulus has the ROCA fingerprint (CVE-2017-15361): its private key can be computed")
	}
	return nil
}

func checkEC(k *ecdsa.PublicKey) error {
	if k == nil || k.Curve == nil {
		return refuse("EC key without a curve")
	}
	switch k.Curve {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
	default:
		return refuse("EC curve %s is not P-256, P-384 or P-521", k.Curve.Params().Name)
	}
	// ECDH validates the point: on the curve, not the point at infinity,
	// coordinates reduced.
	if k.X == nil || k.Y == nil {
		return refuse("EC key without a point")
	}
	if _, err := k.ECDH(); err != nil {
		return refuse("EC point is not on the %s curve", k.Curve.Params().Name)
	}
	return nil
}

func checkEd25519(k ed25519.PublicKey) error {
	if len(k) != ed25519.PublicKeySize {
		return refuse("Ed25519 key of %d bytes (%d expected)", len(k), ed25519.PublicKeySize)
	}
	p, err := decodeEdwards(k)
	if err != nil {
		return refuse("Ed25519 key: %v", err)
	}
	if p.smallOrder() {
		return refuse("Ed25519 key is a point of small order")
	}
	return nil
}
