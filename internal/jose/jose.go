// Package jose holds what the two verifiers of compact JWS in the decision
// point share: access tokens (internal/token) and DPoP proofs
// (internal/dpop). Each keeps its own rules (which headers, which claims,
// which errors); here are the pieces that must not differ between them: the
// alphabet, the strict base64url decoding, which key may verify which
// algorithm, the signature check with its shape rules, and the NumericDates
// a token, proof or SET (internal/ssf) may carry.
package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// B64 decodes unpadded base64url and refuses non-canonical encodings
// (padding, non-zero trailing bits), so that one JWS has one spelling.
var B64 = base64.RawURLEncoding.Strict()

var compactChars = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'] = true, true, true
	return t
}()

// IsCompactChar reports whether c may appear in a compact JWS: base64url
// and the separator.
func IsCompactChar(c byte) bool { return compactChars[c] }

var algorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// Supported reports whether alg is one of the asymmetric algorithms the
// decision point verifies.
func Supported(alg string) bool {
	_, ok := algorithms[alg]
	return ok
}

// KeyFits says whether a key of type kty (and curve crv) may verify alg:
// RSA for RS*/PS*, the matching NIST curve for ES*, Ed25519 for EdDSA.
func KeyFits(alg, kty, crv string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return kty == "RSA"
	case "ES256":
		return crv == "P-256"
	case "ES384":
		return crv == "P-384"
	case "ES512":
		return crv == "P-521"
	case "EdDSA":
		return crv == "Ed25519"
	default:
		return false
	}
}

// Signature shape errors, found before any cryptography runs.
var (
	ErrSignatureLength = errors.New("signature has the wrong length")
	ErrSignatureRange  = errors.New("ECDSA signature value out of range")
)

// Key is a public key ready to verify.
type Key struct {
	Public crypto.PublicKey
	// ECOrder is the big-endian group order n of an EC key, padded to the
	// curve's coordinate size; nil for other keys.
	ECOrder []byte
}

// ECOrder is the big-endian group order n of pub's curve, padded to the
// coordinate size: Key.ECOrder.
func ECOrder(pub *ecdsa.PublicKey) []byte {
	size := (pub.Curve.Params().BitSize + 7) / 8
	return pub.Curve.Params().N.FillBytes(make([]byte, size))
}

// VerifySignature checks the signature sig of the compact JWS raw with k
// under alg; k must fit alg (KeyFits). The signature must have the exact
// size of the key: for ECDSA R‖S with 0 < r, s < n, which refuses DER
// signatures, the all-zero "psychic" signature and r = n before the
// library sees them. The cryptographic check itself is jwx's.
func VerifySignature(k Key, alg, raw string, sig []byte) error {
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return fmt.Errorf("%w: %d bytes for a %d-byte modulus", ErrSignatureLength, len(sig), pub.Size())
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: %d bytes, want %d", ErrSignatureLength, len(sig), ed25519.SignatureSize)
		}
	case *ecdsa.PublicKey:
		size := len(k.ECOrder)
		if size == 0 {
			return errors.New("EC key without its group order")
		}
		if len(sig) != 2*size {
			return fmt.Errorf("%w: %d bytes, want %d (R||S)", ErrSignatureLength, len(sig), 2*size)
		}
		if !inOrder(sig[:size], k.ECOrder) || !inOrder(sig[size:], k.ECOrder) {
			return ErrSignatureRange
		}
	default:
		return fmt.Errorf("unexpected key type %T", k.Public)
	}
	a, ok := algorithms[alg]
	if !ok {
		return fmt.Errorf("unsupported algorithm %q", alg)
	}
	if _, err := jws.VerifyCompactFast(k.Public, []byte(raw), a); err != nil {
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
