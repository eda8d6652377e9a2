package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// DefaultTTL is the lifetime of a minted token without an "exp" claim.
const DefaultTTL = 5 * time.Minute

// MintOption changes how one token is minted.
type MintOption func(*mintConfig)

type mintConfig struct {
	alg    string
	header map[string]any
}

// WithHeader sets or overrides a protected header member (typ, kid, crit,
// jku, jwk, even alg); a nil value removes it. Overriding "alg" changes
// only what the header claims, not how the token is signed (see WithAlg):
// that is how tests produce e.g. an "alg":"none" header on a signed token.
func WithHeader(name string, value any) MintOption {
	return func(c *mintConfig) { c.header[name] = value }
}

// WithAlg signs with alg instead of the issuer's default; the key must
// support it (any RS*/PS* for an RSA key; for EC and Ed25519 keys only the
// algorithm of the key).
func WithAlg(alg string) MintOption {
	return func(c *mintConfig) { c.alg = alg }
}

// Mint returns a signed compact JWT. Defaults: iss = URL(), iat = now,
// exp = now + DefaultTTL, a random jti; header alg, typ "at+jwt" and kid.
// claims override the defaults, and a claim set to nil is removed.
// time.Time claim values are written as NumericDate (Unix seconds).
func (i *Issuer) Mint(claims map[string]any, opts ...MintOption) (string, error) {
	now := time.Now()
	c := mintConfig{alg: i.alg, header: map[string]any{}}
	for _, o := range opts {
		o(&c)
	}
	if !i.supports(c.alg) {
		return "", fmt.Errorf("%w %q for this key", ErrUnsupportedAlg, c.alg)
	}
	header := map[string]any{"alg": c.alg, "typ": "at+jwt", "kid": i.kid}
	merge(header, c.header)

	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	payload := map[string]any{
		"iss": i.url,
		"iat": now.Unix(),
		"exp": now.Add(DefaultTTL).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	}
	merge(payload, claims)
	for k, v := range payload {
		if t, ok := v.(time.Time); ok {
			payload[k] = t.Unix()
		}
	}

	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("devissuer: encoding header: %w", err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("devissuer: encoding claims: %w", err)
	}
	return SignCompact(i.key, c.alg, h, p)
}

// merge copies src into dst, deleting the names whose value is nil.
func merge(dst, src map[string]any) {
	maps.Copy(dst, src)
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		}
	}
}

func (i *Issuer) supports(alg string) bool {
	_, err := hashFor(i.key, alg)
	return err == nil
}

// SignCompact signs the exact header and payload bytes given (which need
// not be valid JSON: tests use it for duplicate members and the like) and
// returns header.payload.signature in base64url. key must support alg.
func SignCompact(key crypto.Signer, alg string, header, payload []byte) (string, error) {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := Sign(key, alg, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Sign returns the JWS signature (RFC 7518 §3) of input under alg: R||S
// for ECDSA, PKCS #1 v1.5 or PSS for RSA, Ed25519 for EdDSA.
func Sign(key crypto.Signer, alg string, input []byte) ([]byte, error) {
	h, err := hashFor(key, alg)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input), nil
	case *rsa.PrivateKey:
		d := digest(h, input)
		if alg[0] == 'P' {
			return rsa.SignPSS(rand.Reader, k, h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, k, h, d)
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest(h, input))
		if err != nil {
			return nil, fmt.Errorf("devissuer: signing: %w", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig, nil
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedAlg, key)
	}
}

// hashFor checks that key can sign alg and returns alg's hash (0 for
// EdDSA).
func hashFor(key crypto.Signer, alg string) (crypto.Hash, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
		if alg == "EdDSA" {
			return 0, nil
		}
	case *rsa.PrivateKey:
		switch alg {
		case "RS256", "PS256":
			return crypto.SHA256, nil
		case "RS384", "PS384":
			return crypto.SHA384, nil
		case "RS512", "PS512":
			return crypto.SHA512, nil
		}
	case *ecdsa.PrivateKey:
		switch bits := k.Curve.Params().BitSize; {
		case alg == "ES256" && bits == 256:
			return crypto.SHA256, nil
		case alg == "ES384" && bits == 384:
			return crypto.SHA384, nil
		case alg == "ES512" && bits == 521:
			return crypto.SHA512, nil
		}
	}
	return 0, fmt.Errorf("%w %q for key type %T", ErrUnsupportedAlg, alg, key)
}

func digest(h crypto.Hash, input []byte) []byte {
	hh := h.New()
	hh.Write(input)
	return hh.Sum(nil)
}
