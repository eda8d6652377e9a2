package ssf

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// Limits on JWKS documents.
const (
	maxJWKSBytes = 1 << 20
	maxJWKSDepth = 8
	minRSABits   = 2048
)

// verifyKey is one usable public key of a transmitter.
type verifyKey struct {
	// pub is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	pub any
	// alg is the JWK "alg", empty when the JWK names none.
	alg string
	// ecOrder is the group order of an EC key (jose.Key.ECOrder).
	ecOrder []byte
}

// fits reports whether the key may verify a signature made with alg: the
// key type (and curve) must be the algorithm's, and a JWK "alg", when
// present, must name alg.
func (k verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "PS256"
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keySet holds the signing keys of one transmitter, from a file read once
// or from a URL fetched again when the keys grow old or an unknown kid
// arrives, at most once per minRefetch.
type keySet struct {
	issuer     string
	uri        string // empty: the keys come from a file
	client     *http.Client
	timeout    time.Duration
	refresh    time.Duration
	minRefetch time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu          sync.Mutex
	keys        map[string]verifyKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch attempt
}

// loadFile reads a JWKS file; a file that holds no usable key is an error.
func (ks *keySet) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read jwks_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("read jwks_file: %w", err)
	}
	keys, err := parseJWKS(data, ks.log.With("transmitter", ks.issuer))
	if err != nil {
		return fmt.Errorf("jwks_file %s: %w", path, err)
	}
	ks.keys = keys
	ks.fetchedAt = ks.now()
	return nil
}

// key returns the key named kid. Keys from a URL are fetched again when
// they are older than refresh, or when kid is unknown, but never more than
// once per minRefetch: a flood of unknown kids causes one fetch, not many.
func (ks *keySet) key(ctx context.Context, kid string) (verifyKey, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.uri == "" {
		k, ok := ks.keys[kid]
		return k, ok
	}
	now := ks.now()
	stale := ks.keys == nil || now.Sub(ks.fetchedAt) >= ks.refresh
	if stale && ks.mayFetch(now) {
		ks.fetchLocked(ctx, now)
	}
	if k, ok := ks.keys[kid]; ok {
		return k, true
	}
	if ks.mayFetch(now) {
		ks.fetchLocked(ctx, now)
	}
	k, ok := ks.keys[kid]
	return k, ok
}

func (ks *keySet) mayFetch(now time.Time) bool {
	return ks.attemptedAt.IsZero() || now.Sub(ks.attemptedAt) >= ks.minRefetch
}

// fetch fetches the keys now, for the first load at start.
func (ks *keySet) fetch(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.fetchLocked(ctx, ks.now())
}

// fetchLocked replaces the keys by the ones at the URL. On failure the
// keys held so far are kept.
func (ks *keySet) fetchLocked(ctx context.Context, now time.Time) error {
	ks.attemptedAt = now
	log := ks.log.With("transmitter", ks.issuer)
	keys, err := ks.download(ctx, log)
	if err != nil {
		log.WarnContext(ctx, "ssf: fetching the transmitter's JWKS failed; keeping the keys held so far", "error", err)
		return err
	}
	ks.keys = keys
	ks.fetchedAt = now
	log.InfoContext(ctx, "ssf: transmitter JWKS fetched", "keys", len(keys))
	return nil
}

func (ks *keySet) download(ctx context.Context, log *slog.Logger) (map[string]verifyKey, error) {
	ctx, cancel := context.WithTimeout(ctx, ks.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.uri, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks_uri: status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	return parseJWKS(data, log)
}

// parseJWKS returns the usable signing keys of a JWKS document by kid.
// Keys without kid, private or symmetric keys, keys meant for encryption,
// RSA keys under 2048 bits and kids that appear twice are left out.
func parseJWKS(data []byte, log *slog.Logger) (map[string]verifyKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", maxJWKSBytes)
	}
	// The strict parse refuses duplicate members, which jwk.Parse would
	// silently resolve.
	if _, err := jsonast.Parse(data, maxJWKSDepth); err != nil {
		return nil, fmt.Errorf("JWKS is not strict JSON: %w", err)
	}
	// Keys are parsed one by one, so that one key this package cannot use
	// (an unknown kty, a weak RSA key) does not take the others with it.
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := make(map[string]verifyKey, len(doc.Keys))
	dup := map[string]bool{}
	for i, raw := range doc.Keys {
		k, err := jwk.ParseKey(raw)
		if err != nil {
			log.Warn("ssf: JWKS key skipped", "index", i, "reason", err.Error())
			continue
		}
		kid, _ := k.KeyID()
		vk, err := usableKey(k)
		if err != nil {
			log.Warn("ssf: JWKS key skipped", "kid", kid, "reason", err.Error())
			continue
		}
		if _, seen := keys[kid]; seen || dup[kid] {
			dup[kid] = true
			delete(keys, kid)
			log.Warn("ssf: JWKS kid appears more than once; none of its keys is used", "kid", kid)
			continue
		}
		keys[kid] = vk
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS holds no usable signing key")
	}
	return keys, nil
}

func usableKey(k jwk.Key) (verifyKey, error) {
	kid, ok := k.KeyID()
	if !ok || kid == "" {
		return verifyKey{}, errors.New("no kid")
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return verifyKey{}, fmt.Errorf("use is %q, not sig", use)
	}
	if ops, ok := k.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return verifyKey{}, errors.New("key_ops does not include verify")
	}
	if priv, err := jwk.IsPrivateKey(k); err != nil || priv {
		return verifyKey{}, errors.New("not a public asymmetric key")
	}
	var alg string
	if a, ok := k.Algorithm(); ok {
		alg = a.String()
		if !slices.Contains(allowedAlgs, alg) {
			return verifyKey{}, fmt.Errorf("alg %q is not allowed", alg)
		}
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return verifyKey{}, err
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Errorf("RSA key of %d bits is too short", pub.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return verifyKey{}, errors.New("curve is not P-256 or P-384")
		}
		return verifyKey{pub: raw, alg: alg, ecOrder: jose.ECOrder(pub)}, nil
	case ed25519.PublicKey:
	default:
		return verifyKey{}, fmt.Errorf("key type %T is not supported", raw)
	}
	return verifyKey{pub: raw, alg: alg}, nil
}
