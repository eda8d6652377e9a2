package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// ErrUnsupportedAlg reports an algorithm the issuer cannot sign with.
var ErrUnsupportedAlg = errors.New("devissuer: unsupported algorithm")

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// Issuer is an in-memory issuer with one signing key. It is immutable
// after New and safe for concurrent use.
type Issuer struct {
	url  string
	alg  string
	key  crypto.Signer
	kid  string
	jwks []byte
}

// New creates an issuer for issuerURL with a fresh key for alg: ES256
// (P-256), ES384 (P-384), ES512 (P-521), RS256/RS384/RS512/PS256/PS384/PS512
// (RSA 2048) or EdDSA (Ed25519). The kid is the key's RFC 7638 SHA-256
// thumbprint.
func New(issuerURL string, alg string) (*Issuer, error) {
	if issuerURL == "" {
		return nil, errors.New("devissuer: empty issuer URL")
	}
	key, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(key.Public())
	if err != nil {
		return nil, fmt.Errorf("devissuer: importing public key: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: computing thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	sigAlg, _ := jwa.LookupSignatureAlgorithm(alg)
	for name, value := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: sigAlg,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pub.Set(name, value); err != nil {
			return nil, fmt.Errorf("devissuer: setting %s: %w", name, err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("devissuer: building JWKS: %w", err)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("devissuer: encoding JWKS: %w", err)
	}
	return &Issuer{url: issuerURL, alg: alg, key: key, kid: kid, jwks: doc}, nil
}

func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, rsaBits)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedAlg, alg)
	}
}

// URL is the issuer identifier, the default "iss" of minted tokens.
func (i *Issuer) URL() string { return i.url }

// KID is the key id, the RFC 7638 thumbprint of the key.
func (i *Issuer) KID() string { return i.kid }

// Alg is the default signing algorithm.
func (i *Issuer) Alg() string { return i.alg }

// PrivateKey is the signing key, for tests that hand-craft tokens.
func (i *Issuer) PrivateKey() crypto.Signer { return i.key }

// JWKS is the public key set document (a fresh copy).
func (i *Issuer) JWKS() []byte { return slices.Clone(i.jwks) }

// JWKSHandler serves the JWKS document as application/json.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(i.jwks)
	})
}
