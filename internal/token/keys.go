package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/keycheck"
)

// Key set limits.
const (
	// maxJWKSSize bounds a JWKS document.
	maxJWKSSize = 1 << 20
	// maxJWKSKeys bounds the entries of a JWKS document.
	maxJWKSKeys = 100
	// maxKeysPerToken bounds how many keys one token is tried against
	// (a token without kid, or several keys sharing one kid).
	maxKeysPerToken = 4
)

// ErrPrivateKeyInJWKS reports a JWKS that publishes private key material.
// Such a document is refused as a whole: its keys must be considered
// compromised.
var ErrPrivateKeyInJWKS = errors.New("JWKS contains private key material")

// verifyKey is one usable public key of an issuer.
type verifyKey struct {
	kid   string
	kty   string // RSA, EC or OKP
	curve string // P-256, P-384, P-521, Ed25519; "" for RSA
	alg   string // the JWK "alg", "" when absent
	// pub is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	pub any
	// thumbprint is the RFC 7638 SHA-256 thumbprint (base64url); cache
	// entries remember it so that a key removed from the JWKS stops
	// vouching for cached tokens.
	thumbprint string
	// ecOrder is the big-endian group order n of an EC key, padded to the
	// coordinate size, for the J9 range check.
	ecOrder []byte
}

// fits says whether the key may verify alg (J1): RSA for RS*/PS*, the
// matching NIST curve for ES*, Ed25519 for EdDSA, and the JWK's own "alg"
// when it has one.
func (k *verifyKey) fits(alg string) bool {
	return (k.alg == "" || k.alg == alg) && jose.KeyFits(alg, k.kty, k.curve)
}

// keySet is an issuer's usable keys; immutable once built.
type keySet struct {
	keys         []*verifyKey
	byKid        map[string][]*verifyKey
	byThumbprint map[string]*verifyKey
}

func (s *keySet) hasThumbprint(tp string) bool {
	if s == nil {
		return false
	}
	_, ok := s.byThumbprint[tp]
	return ok
}

// lookup returns the keys named kid that fit alg.
func (s *keySet) lookup(kid, alg string) (named, fitting []*verifyKey) {
	if s == nil {
		return nil, nil
	}
	named = s.byKid[kid]
	for _, k := range named {
		if k.fits(alg) && len(fitting) < maxKeysPerToken {
			fitting = append(fitting, k)
		}
	}
	return named, fitting
}

// fitting returns the first keys that fit alg, for a token without kid.
func (s *keySet) fitting(alg string) []*verifyKey {
	if s == nil {
		return nil
	}
	var out []*verifyKey
	for _, k := range s.keys {
		if k.fits(alg) {
			out = append(out, k)
			if len(out) == maxKeysPerToken {
				break
			}
		}
	}
	return out
}

// skippedKey describes a JWKS entry that was left out, for the log and
// the status page.
type skippedKey struct {
	Index  int
	KID    string
	Reason string
	// Refused marks a key that keycheck refused (weak or invalid), as
	// opposed to one this issuer cannot use (encryption, symmetric, an
	// unknown type).
	Refused bool
}

// parseKeySet turns a JWKS document into the usable public signature keys.
// It refuses documents that are not a strict JSON object with a "keys"
// array, that publish private keys, or that leave no usable key. Entries
// that cannot be used (symmetric, encryption-only, unknown type or curve,
// an alg that is not a supported signature algorithm) are skipped, and keys
// that keycheck refuses (weak RSA, ROCA, EC points off their curve, small
// Ed25519 points) are refused; both are reported.
func parseKeySet(data []byte) (*keySet, []skippedKey, error) {
	if len(data) > maxJWKSSize {
		return nil, nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSSize)
	}
	// Strict pass first: duplicate members and the like must not be
	// resolved differently by two parsers.
	doc, err := parseObject(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	var entries *ast.Array
	if t := doc.Get(ast.StringTerm("keys")); t != nil {
		entries, _ = t.Value.(*ast.Array)
	}
	if entries == nil {
		return nil, nil, errors.New(`JWKS has no "keys" array`)
	}
	if entries.Len() > maxJWKSKeys {
		return nil, nil, fmt.Errorf("JWKS has %d keys, more than %d", entries.Len(), maxJWKSKeys)
	}
	for i := range entries.Len() {
		entry, ok := entries.Elem(i).Value.(ast.Object)
		if !ok {
			return nil, nil, fmt.Errorf("JWKS key #%d is not an object", i)
		}
		if entry.Get(ast.StringTerm("d")) != nil {
			return nil, nil, fmt.Errorf("JWKS key #%d: %w", i, ErrPrivateKeyInJWKS)
		}
	}

	set, err := jwk.Parse(data, jwk.WithStrictKeySetParsing(false), jwk.WithMaxKeys(maxJWKSKeys))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	ks := &keySet{byKid: map[string][]*verifyKey{}, byThumbprint: map[string]*verifyKey{}}
	var skipped []skippedKey
	for i := range set.Len() {
		key, _ := set.Key(i)
		vk, reason, err := usableKey(key)
		if err != nil && !errors.Is(err, keycheck.ErrRefused) {
			return nil, nil, fmt.Errorf("JWKS key #%d: %w", i, err)
		}
		if vk == nil {
			kid, _ := key.KeyID()
			skipped = append(skipped, skippedKey{Index: i, KID: kid, Reason: reason, Refused: err != nil})
			continue
		}
		ks.keys = append(ks.keys, vk)
		if vk.kid != "" {
			ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
		}
		ks.byThumbprint[vk.thumbprint] = vk
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("JWKS has no usable public signature key")
	}
	return ks, skipped, nil
}

// usableKey converts one JWK. It returns (nil, reason, nil) for a key that
// is skipped, (nil, reason, error wrapping keycheck.ErrRefused) for a weak
// or invalid key, and an error for private key material.
func usableKey(key jwk.Key) (*verifyKey, string, error) {
	if _, ok := key.(jwk.UnsupportedKey); ok {
		return nil, "unsupported or invalid key", nil
	}
	if priv, err := jwk.IsPrivateKey(key); err == nil && priv {
		return nil, "", ErrPrivateKeyInJWKS
	}
	if use, ok := key.KeyUsage(); ok && use != string(jwk.ForSignature) {
		return nil, fmt.Sprintf("use is %q", use), nil
	}
	if ops, ok := key.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, `key_ops lacks "verify"`, nil
	}
	vk := &verifyKey{}
	vk.kid, _ = key.KeyID()
	if alg, ok := key.Algorithm(); ok {
		vk.alg = alg.String()
		if !slices.Contains(config.SupportedAlgorithms, vk.alg) {
			return nil, fmt.Sprintf("alg %q is not a supported signature algorithm", vk.alg), nil
		}
	}

	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, "cannot export the key", nil
	}
	// jwx's own import checks depend on process-wide settings that OPA
	// loosens; keycheck does not.
	switch raw.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		if err := keycheck.Check(raw); err != nil {
			return nil, err.Error(), err
		}
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		vk.kty, vk.pub = "RSA", pub
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			vk.curve = "P-256"
		case elliptic.P384():
			vk.curve = "P-384"
		case elliptic.P521():
			vk.curve = "P-521"
		default:
			return nil, "unsupported curve", nil
		}
		vk.kty, vk.pub, vk.ecOrder = "EC", pub, jose.ECOrder(pub)
	case ed25519.PublicKey:
		vk.kty, vk.curve, vk.pub = "OKP", "Ed25519", pub
	default:
		return nil, fmt.Sprintf("key type %q is not usable for signatures", key.KeyType().String()), nil
	}
	if vk.alg != "" && !vk.fits(vk.alg) {
		return nil, fmt.Sprintf("alg %q does not fit the key", vk.alg), nil
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "cannot compute the thumbprint", nil
	}
	vk.thumbprint = base64.RawURLEncoding.EncodeToString(tp)
	return vk, "", nil
}
