package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Signature shape errors, found before any cryptography runs (J9).
var (
	errSignatureLength = errors.New("signature has the wrong length")
	errSignatureRange  = errors.New("ECDSA signature value out of range")
)

// jwaAlgs maps the supported algorithm names to jwx's values.
var jwaAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// verifySignature checks the signature of the compact JWS raw with key k
// under alg. k must fit alg (verifyKey.fits).
//
// ECDSA signatures must be exactly R‖S of the curve's size with
// 0 < r, s < n (J9): this refuses DER signatures, the all-zero "psychic"
// signature and r = n before the library sees them. The cryptographic
// check itself is jwx's, on the raw public key.
func verifySignature(k *verifyKey, alg, raw string, sig []byte) error {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return fmt.Errorf("%w: %d bytes for a %d-byte modulus", errSignatureLength, len(sig), pub.Size())
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: %d bytes, want %d", errSignatureLength, len(sig), ed25519.SignatureSize)
		}
	default:
		size := len(k.ecOrder)
		if size == 0 {
			return fmt.Errorf("unexpected key type %T", k.pub)
		}
		if len(sig) != 2*size {
			return fmt.Errorf("%w: %d bytes, want %d (R||S)", errSignatureLength, len(sig), 2*size)
		}
		if !inOrder(sig[:size], k.ecOrder) || !inOrder(sig[size:], k.ecOrder) {
			return errSignatureRange
		}
	}
	a, ok := jwaAlgs[alg]
	if !ok {
		return fmt.Errorf("unsupported algorithm %q", alg)
	}
	if _, err := jws.VerifyCompactFast(k.pub, []byte(raw), a); err != nil {
		return fmt.Errorf("verifying signature: %w", err)
	}
	return nil
}

// inOrder reports 0 < v < n for big-endian v and n of equal length.
func inOrder(v, n []byte) bool {
	zero := true
	for _, b := range v {
		if b != 0 {
			zero = false
			break
		}
	}
	return !zero && bytes.Compare(v, n) < 0
}
