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
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/jsonast"
	"github.com/tokenguard/pdp/internal/keycheck"
)

// Limits on JWKS documents.
const (
	maxJWKSBytes = 1 << 20
	maxJWKSDepth = 8
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
	// refused are the entries of the last JWKS document read that are not
	// used; lastErr is the error of the last fetch (Status).
	refused []RefusedKey
	lastErr error
}

// RefusedKey is a JWKS entry left out, for status pages.
type RefusedKey struct {
	// Index is the entry's position in the document's "keys" array.
	Index int `json:"index"`
	// KID is the entry's "kid", empty when it has none.
	KID string `json:"kid,omitempty"`
	// Reason says why it is not used.
	Reason string `json:"reason"`
	// Refused reports a key refused as weak or invalid, as opposed to one
	// of no use for verifying SETs (encryption, symmetric, no kid).
	Refused bool `json:"refused"`
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
	keys, refused, err := parseJWKS(data, ks.log.With("transmitter", ks.issuer))
	ks.refused = refused
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
	keys, refused, err := ks.download(ctx, log)
	if refused != nil || err == nil {
		ks.refused = refused
	}
	ks.lastErr = err
	if err != nil {
		log.WarnContext(ctx, "ssf: fetching the transmitter's JWKS failed; keeping the keys held so far", "error", err)
		return err
	}
	ks.keys = keys
	ks.fetchedAt = now
	log.InfoContext(ctx, "ssf: transmitter JWKS fetched", "keys", len(keys))
	return nil
}

func (ks *keySet) download(ctx context.Context, log *slog.Logger) (map[string]verifyKey, []RefusedKey, error) {
	ctx, cancel := context.WithTimeout(ctx, ks.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.uri, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch jwks_uri: status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	return parseJWKS(data, log)
}

// KeysStatus describes one transmitter's keys, for status pages.
type KeysStatus struct {
	// Loaded reports a usable key set; Keys counts its keys.
	Loaded bool `json:"loaded"`
	Keys   int  `json:"keys"`
	// LastError is the error of the last fetch, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// RefusedKeys are the entries of the last JWKS document read that are
	// not used.
	RefusedKeys []RefusedKey `json:"refused_keys,omitempty"`
}

func (ks *keySet) status() KeysStatus {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	s := KeysStatus{Loaded: ks.keys != nil, Keys: len(ks.keys), RefusedKeys: ks.refused}
	if ks.lastErr != nil {
		s.LastError = ks.lastErr.Error()
	}
	return s
}

// parseJWKS returns the usable signing keys of a JWKS document by kid, and
// the entries left out: keys without kid, private or symmetric keys, keys
// meant for encryption, keys the key check refuses (keycheck: weak RSA,
// ROCA, EC points off their curve, small-order Ed25519) and kids that
// appear twice.
func parseJWKS(data []byte, log *slog.Logger) (map[string]verifyKey, []RefusedKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("JWKS is larger than %d bytes", maxJWKSBytes)
	}
	// The strict parse refuses duplicate members, which jwk.Parse would
	// silently resolve.
	if _, err := jsonast.Parse(data, maxJWKSDepth); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not strict JSON: %w", err)
	}
	// Keys are parsed one by one, so that one key this package cannot use
	// (an unknown kty, a weak RSA key) does not take the others with it.
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse JWKS: %w", err)
	}
	keys := make(map[string]verifyKey, len(doc.Keys))
	refused := []RefusedKey{}
	dup := map[string]bool{}
	for i, raw := range doc.Keys {
		k, err := jwk.ParseKey(raw)
		if err != nil {
			// jwx refuses keys it cannot import (and, unless configured
			// otherwise, weak RSA keys).
			log.Warn("ssf: JWKS key refused", "index", i, "reason", err.Error())
			refused = append(refused, RefusedKey{Index: i, Reason: err.Error(), Refused: true})
			continue
		}
		kid, _ := k.KeyID()
		vk, err := usableKey(k)
		if err != nil {
			weak := errors.Is(err, keycheck.ErrRefused)
			if weak {
				log.Warn("ssf: JWKS key refused", "index", i, "kid", kid, "reason", err.Error())
			} else {
				log.Warn("ssf: JWKS key skipped", "index", i, "kid", kid, "reason", err.Error())
			}
			refused = append(refused, RefusedKey{Index: i, KID: kid, Reason: err.Error(), Refused: weak})
			continue
		}
		if _, seen := keys[kid]; seen || dup[kid] {
			dup[kid] = true
			delete(keys, kid)
			log.Warn("ssf: JWKS kid appears more than once; none of its keys is used", "kid", kid)
			refused = append(refused, RefusedKey{Index: i, KID: kid, Reason: "kid appears more than once"})
			continue
		}
		keys[kid] = vk
	}
	if len(keys) == 0 {
		return nil, refused, errors.New("JWKS holds no usable signing key")
	}
	return keys, refused, nil
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
	switch raw.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		// jwx's own import checks depend on process-wide settings that
		// OPA loosens; keycheck does not.
		if err := keycheck.Check(raw); err != nil {
			return verifyKey{}, err
		}
	}
	switch pub := raw.(type) {
	case *rsa.PublicKey:
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

// TransmitterStatus describes one transmitter's keys, for status pages.
type TransmitterStatus struct {
	Issuer string `json:"issuer"`
	// Source is where its keys come from: "jwks_uri" or "jwks_file".
	Source string `json:"source"`
	KeysStatus
}

// Status describes the keys of every transmitter, sorted by issuer.
func (v *Verifier) Status() []TransmitterStatus {
	out := make([]TransmitterStatus, 0, len(v.byIssuer))
	for iss, t := range v.byIssuer {
		s := TransmitterStatus{Issuer: iss, Source: "jwks_file", KeysStatus: t.keys.status()}
		if t.keys.uri != "" {
			s.Source = "jwks_uri"
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b TransmitterStatus) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out
}

// Status describes the keys of every transmitter: the ssf part of GET
// /v1/status.
func (r *Receiver) Status() []TransmitterStatus { return r.verifier.Status() }
