// Package dpoptest mints DPoP proofs (RFC 9449) for tests: a Prover holds a
// fresh key pair and signs proofs with it, correct by default, with options
// to change or remove any header member or claim.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/devissuer"
)

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// Prover is a DPoP client key pair. It is immutable and safe for concurrent
// use.
type Prover struct {
	alg string
	key crypto.Signer
	jwk map[string]any
	jkt string
}

// NewProver returns a prover with a fresh key for alg: ES256 (P-256), ES384
// (P-384), ES512 (P-521), RS256/RS384/RS512/PS256/PS384/PS512 (RSA 2048) or
// EdDSA (Ed25519).
func NewProver(alg string) (*Prover, error) {
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		key, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case "EdDSA":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dpoptest: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("dpoptest: generating a key: %w", err)
	}
	return NewProverWithKey(alg, key)
}

// NewProverWithKey returns a prover that signs alg with key (an
// *ecdsa.PrivateKey, *rsa.PrivateKey or ed25519.PrivateKey).
func NewProverWithKey(alg string, key crypto.Signer) (*Prover, error) {
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return nil, fmt.Errorf("dpoptest: importing the key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpoptest: thumbprint: %w", err)
	}
	raw, err := json.Marshal(pub)
	if err != nil {
		return nil, fmt.Errorf("dpoptest: encoding the jwk: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("dpoptest: encoding the jwk: %w", err)
	}
	p := &Prover{alg: alg, key: key, jwk: m, jkt: base64.RawURLEncoding.EncodeToString(tp)}
	// Check that key and alg go together.
	if _, err := devissuer.Sign(key, alg, []byte("probe")); err != nil {
		return nil, fmt.Errorf("dpoptest: %w", err)
	}
	return p, nil
}

// Alg is the prover's signature algorithm.
func (p *Prover) Alg() string { return p.alg }

// Key is the prover's private key.
func (p *Prover) Key() crypto.Signer { return p.key }

// JKT is the RFC 7638 SHA-256 thumbprint of the prover's key, base64url:
// the cnf.jkt of a token bound to it.
func (p *Prover) JKT() string { return p.jkt }

// PublicJWK returns a copy of the public key as a JWK object.
func (p *Prover) PublicJWK() map[string]any { return maps.Clone(p.jwk) }

// ProofOption changes one proof.
type ProofOption func(*proofConfig)

type proofConfig struct {
	header map[string]any
	claims map[string]any
	signer *Prover
}

// WithHeader sets or overrides a protected header member (typ, alg, jwk,
// kid, crit, ...); a nil value removes it. Overriding "alg" changes what the
// header says, not how the proof is signed.
func WithHeader(name string, value any) ProofOption {
	return func(c *proofConfig) { c.header[name] = value }
}

// WithClaim sets or overrides a claim (jti, htm, htu, iat, ath, nonce, ...);
// a nil value removes it. time.Time values are written as seconds since the
// epoch.
func WithClaim(name string, value any) ProofOption {
	return func(c *proofConfig) { c.claims[name] = value }
}

// WithNonce adds the server nonce n.
func WithNonce(n string) ProofOption { return WithClaim("nonce", n) }

// WithIssuedAt sets iat.
func WithIssuedAt(t time.Time) ProofOption { return WithClaim("iat", t) }

// WithSigner signs the proof with other's key (and other's algorithm) while
// the header still carries this prover's jwk: a proof "signed by another
// key".
func WithSigner(other *Prover) ProofOption {
	return func(c *proofConfig) { c.signer = other }
}

// Proof mints a proof for a request: header typ "dpop+jwt", alg and the
// public jwk; claims a random jti, htm = method, htu, iat = now and, when
// accessToken is not empty, ath = base64url(SHA-256(accessToken)).
func (p *Prover) Proof(method, htu, accessToken string, opts ...ProofOption) (string, error) {
	c := proofConfig{header: map[string]any{}, claims: map[string]any{}, signer: p}
	for _, o := range opts {
		o(&c)
	}
	header := map[string]any{"typ": "dpop+jwt", "alg": p.alg, "jwk": p.jwk}
	merge(header, c.header)

	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("dpoptest: random jti: %w", err)
	}
	claims := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"htm": method,
		"htu": htu,
		"iat": time.Now().Unix(),
	}
	if accessToken != "" {
		claims["ath"] = ATH(accessToken)
	}
	merge(claims, c.claims)
	for k, v := range claims {
		if t, ok := v.(time.Time); ok {
			claims[k] = t.Unix()
		}
	}

	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("dpoptest: encoding the header: %w", err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpoptest: encoding the claims: %w", err)
	}
	return devissuer.SignCompact(c.signer.key, c.signer.alg, h, b)
}

// SignRaw signs the exact header and payload bytes given, which need not be
// valid JSON (duplicate members and the like).
func (p *Prover) SignRaw(header, payload []byte) (string, error) {
	return devissuer.SignCompact(p.key, p.alg, header, payload)
}

// ATH returns the ath claim for accessToken: base64url(SHA-256(token)).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// merge copies src into dst, deleting the names whose value is nil.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}
