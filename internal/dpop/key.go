package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/keycheck"
)

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of key, base64url
// without padding: the value of a token's cnf.jkt (RFC 9449 §6). A public
// key and its private key have the same thumbprint.
func Thumbprint(key jwk.Key) (string, error) {
	if key == nil {
		return "", errors.New("dpop: thumbprint of a nil key")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: computing the thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// proofKey is the public key of a proof's jwk header, checked.
type proofKey struct {
	kty string // RSA, EC or OKP
	crv string // P-256, P-384, P-521 or Ed25519; "" for RSA
	// pub is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	pub any
	// ecOrder is the big-endian group order of an EC key, padded to the
	// coordinate size, for the R||S range check.
	ecOrder []byte
	// jkt is the RFC 7638 SHA-256 thumbprint, base64url.
	jkt string
}

// Names of jwk members.
var (
	kKty    = ast.StringTerm("kty")
	kCrv    = ast.StringTerm("crv")
	kX      = ast.StringTerm("x")
	kY      = ast.StringTerm("y")
	kN      = ast.StringTerm("n")
	kE      = ast.StringTerm("e")
	kAlg    = ast.StringTerm("alg")
	kUse    = ast.StringTerm("use")
	kKeyOps = ast.StringTerm("key_ops")
)

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []*ast.Term{
	ast.StringTerm("d"), ast.StringTerm("p"), ast.StringTerm("q"),
	ast.StringTerm("dp"), ast.StringTerm("dq"), ast.StringTerm("qi"),
	ast.StringTerm("oth"), ast.StringTerm("k"),
}

// parseJWK applies the key part of D2 to the header's jwk: a public
// RSA, EC (P-256, P-384, P-521) or Ed25519 key, canonically encoded,
// without private members, that passes keycheck and fits alg. The key is built here
// from the checked members; no other header member is ever used to find a
// key.
func parseJWK(t *ast.Term, alg string) (*proofKey, *Error) {
	if t == nil {
		return nil, invalid(`DPoP proof header "jwk" is missing`)
	}
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, invalid(`DPoP proof header "jwk" must be a JSON object`)
	}
	kty, _, err := optString(obj, kKty)
	if err != nil || kty == "" {
		return nil, invalid(`DPoP proof jwk has no valid "kty"`)
	}
	if kty == "oct" {
		return nil, invalid("DPoP proof jwk must be an asymmetric public key")
	}
	for _, m := range privateMembers {
		if obj.Get(m) != nil {
			return nil, invalid("DPoP proof jwk must not contain private key material")
		}
	}
	if e := checkJWKUsage(obj, alg); e != nil {
		return nil, e
	}

	var k *proofKey
	var e *Error
	switch kty {
	case "RSA":
		k, e = rsaKey(obj)
	case "EC":
		k, e = ecKey(obj)
	case "OKP":
		k, e = okpKey(obj)
	default:
		return nil, invalid("DPoP proof jwk key type is not supported")
	}
	if e != nil {
		return nil, e
	}
	// The same key check as for issuer and transmitter keys: RSA size,
	// exponent and ROCA fingerprint, EC point, Ed25519 small order.
	if err := keycheck.Check(k.pub); err != nil {
		return nil, invalidWrap("DPoP proof jwk is refused: "+err.Error(), err)
	}
	if !k.fits(alg) {
		return nil, invalid("DPoP proof jwk does not fit the alg")
	}
	return k, nil
}

// checkJWKUsage refuses a jwk whose own alg, use or key_ops exclude
// verifying alg.
func checkJWKUsage(obj ast.Object, alg string) *Error {
	if a, ok, err := optString(obj, kAlg); err != nil || (ok && a != alg) {
		return invalid("DPoP proof jwk does not fit the alg")
	}
	if use, ok, err := optString(obj, kUse); err != nil || (ok && use != "sig") {
		return invalid(`DPoP proof jwk "use" must be "sig"`)
	}
	if t := obj.Get(kKeyOps); t != nil {
		ops, ok := t.Value.(*ast.Array)
		if !ok || ops.Len() > 16 {
			return invalid(`DPoP proof jwk "key_ops" must allow "verify"`)
		}
		found := false
		for i := range ops.Len() {
			if s, ok := ops.Elem(i).Value.(ast.String); ok && s == "verify" {
				found = true
			}
		}
		if !found {
			return invalid(`DPoP proof jwk "key_ops" must allow "verify"`)
		}
	}
	return nil
}

// member decodes the required base64url member name of a jwk.
func member(obj ast.Object, name *ast.Term) (string, []byte, bool) {
	s, ok, err := optString(obj, name)
	if !ok || err != nil || s == "" {
		return "", nil, false
	}
	b, err := jose.B64.DecodeString(s)
	if err != nil {
		return "", nil, false
	}
	return s, b, true
}

func rsaKey(obj ast.Object) (*proofKey, *Error) {
	nStr, n, okN := member(obj, kN)
	eStr, e, okE := member(obj, kE)
	// RFC 7518 §6.3.1: minimal big-endian encodings, so that the
	// thumbprint input is the one every implementation computes.
	if !okN || !okE || n[0] == 0 || e[0] == 0 || len(e) > 4 {
		return nil, invalid("DPoP proof jwk is not a valid RSA public key")
	}
	var exp uint64
	for _, b := range e {
		exp = exp<<8 | uint64(b)
	}
	// Bounded here so that the conversion to int is exact; keycheck
	// applies the rules (odd, at least 3).
	if exp > keycheck.MaxRSAExponent {
		return nil, invalid("DPoP proof jwk is refused: RSA public exponent too large")
	}
	// Bound the modulus before building it; keycheck applies the rest.
	if len(n) > keycheck.MaxRSABits/8 {
		return nil, invalid(fmt.Sprintf("DPoP proof jwk is refused: RSA modulus of more than %d bits", keycheck.MaxRSABits))
	}
	mod := new(big.Int).SetBytes(n)
	return &proofKey{
		kty: "RSA",
		pub: &rsa.PublicKey{N: mod, E: int(exp)},
		jkt: thumbprintOf(`{"e":"` + eStr + `","kty":"RSA","n":"` + nStr + `"}`),
	}, nil
}

func ecKey(obj ast.Object) (*proofKey, *Error) {
	crv, _, err := optString(obj, kCrv)
	if err != nil {
		return nil, invalid("DPoP proof jwk curve is not supported")
	}
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, invalid("DPoP proof jwk curve is not supported")
	}
	size := (curve.Params().BitSize + 7) / 8
	xStr, x, okX := member(obj, kX)
	yStr, y, okY := member(obj, kY)
	// RFC 7518 §6.2.1.2: coordinates are the full size of the curve.
	if !okX || !okY || len(x) != size || len(y) != size {
		return nil, invalid("DPoP proof jwk is not a valid EC public key")
	}
	point := make([]byte, 0, 1+2*size)
	point = append(append(append(point, 4), x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, invalidWrap("DPoP proof jwk is not a valid EC public key", err)
	}
	return &proofKey{
		kty:     "EC",
		crv:     crv,
		pub:     pub,
		ecOrder: jose.ECOrder(pub),
		jkt:     thumbprintOf(`{"crv":"` + crv + `","kty":"EC","x":"` + xStr + `","y":"` + yStr + `"}`),
	}, nil
}

func okpKey(obj ast.Object) (*proofKey, *Error) {
	crv, _, err := optString(obj, kCrv)
	if err != nil || crv != "Ed25519" {
		return nil, invalid("DPoP proof jwk curve is not supported")
	}
	xStr, x, ok := member(obj, kX)
	if !ok || len(x) != ed25519.PublicKeySize {
		return nil, invalid("DPoP proof jwk is not a valid Ed25519 public key")
	}
	return &proofKey{
		kty: "OKP",
		crv: crv,
		pub: ed25519.PublicKey(x),
		jkt: thumbprintOf(`{"crv":"Ed25519","kty":"OKP","x":"` + xStr + `"}`),
	}, nil
}

// thumbprintOf hashes the RFC 7638 canonical JSON of a key. The callers
// build it from members that are canonical base64url (checked above), so
// no escaping is needed and the result equals what Thumbprint computes.
func thumbprintOf(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// fits says whether the key may verify alg.
func (k *proofKey) fits(alg string) bool { return jose.KeyFits(alg, k.kty, k.crv) }

// verifySignature applies D3 (exact signature size, ECDSA R||S in range,
// then jwx with the jwk's public key).
func verifySignature(k *proofKey, alg, raw string, sig []byte) error {
	return jose.VerifySignature(jose.Key{Public: k.pub, ECOrder: k.ecOrder}, alg, raw, sig)
}
