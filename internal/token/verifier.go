package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/jose"
)

// Options tune a Verifier.
type Options struct {
	// HTTPClient fetches JWKS documents and calls the introspection
	// endpoint. nil means a client with a 5s timeout that follows no
	// redirect to another host or scheme.
	HTTPClient *http.Client
	// Skew is the leeway for exp, nbf and iat.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives JWKS and introspection problems; nil discards.
	Logger *slog.Logger
	// CacheSize bounds the cached verified tokens (0 means
	// DefaultCacheSize).
	CacheSize int
	// CacheBytes bounds the estimated heap of the cached verified tokens
	// (0 means DefaultCacheBytes).
	CacheBytes int64
	// Observer, when set, is told about JWKS fetches, introspection calls
	// and cache lookups (for metrics).
	Observer Observer
}

// Observer watches the verifier's outbound calls and its cache. Its
// methods must be cheap and safe for concurrent use; they never see a
// token.
type Observer interface {
	// JWKSFetched is called when a JWKS fetch ends; trigger is
	// TriggerScheduled or TriggerUnknownKey, err nil on success.
	JWKSFetched(trigger string, err error)
	// Introspected is called once per RFC 7662 call with its outcome:
	// IntrospectionActive, IntrospectionInactive or IntrospectionError.
	Introspected(outcome string)
	// CacheLookup is called once per verification that consults the cache.
	CacheLookup(hit bool)
}

// What caused a JWKS fetch (Observer.JWKSFetched): the refresh loop of
// Run, or a token whose key is not loaded (an unknown kid, or a first token
// before any key set), rate-limited.
const (
	TriggerScheduled  = "scheduled"
	TriggerUnknownKey = "unknown_key"
)

// Outcomes of an introspection call (Observer.Introspected).
const (
	IntrospectionActive   = "active"
	IntrospectionInactive = "inactive"
	IntrospectionError    = "error"
)

// noObserver is the Observer of a verifier without one.
type noObserver struct{}

func (noObserver) JWKSFetched(string, error) {}
func (noObserver) Introspected(string)       {}
func (noObserver) CacheLookup(bool)          {}

// Verifier verifies access tokens for a fixed set of issuers. It is safe
// for concurrent use.
type Verifier struct {
	issuers      []*issuer
	byName       map[string]*issuer
	introspector *introspector
	client       *http.Client
	skew         time.Duration
	now          func() time.Time
	log          *slog.Logger
	cache        *tokenCache
	obs          Observer
}

// issuer is one trusted issuer and its current keys.
type issuer struct {
	cfg  config.Issuer
	keys atomic.Pointer[keySet]

	mu sync.Mutex
	// lastFetch is when the last JWKS fetch started (rate limit, J2).
	lastFetch time.Time
	// lastErr is the error of the last JWKS fetch, nil after a success.
	lastErr error
	// inflight is the running fetch, if any.
	inflight *jwksFetch
	// refused are the entries of the last JWKS document read that are
	// not used (Status).
	refused []RefusedKey
}

// NewVerifier builds a Verifier for issuers. It loads jwks_file key sets
// and introspection client secrets, and fails on any configuration it
// cannot honour; it starts no goroutines and fetches nothing (see Run).
func NewVerifier(ctx context.Context, issuers []config.Issuer, opts Options) (*Verifier, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(issuers) == 0 {
		return nil, errors.New("token: no issuers configured")
	}
	v := &Verifier{
		byName: make(map[string]*issuer, len(issuers)),
		client: opts.HTTPClient,
		skew:   opts.Skew,
		now:    opts.Now,
		log:    opts.Logger,
		cache:  newTokenCache(opts.CacheSize, opts.CacheBytes),
		obs:    opts.Observer,
	}
	if v.obs == nil {
		v.obs = noObserver{}
	}
	if v.client == nil {
		v.client = defaultHTTPClient()
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.skew < 0 {
		return nil, errors.New("token: negative clock skew")
	}
	var errs []error
	for i, c := range issuers {
		is, err := v.newIssuer(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d] (%s): %w", i, c.Issuer, err))
			continue
		}
		if _, dup := v.byName[c.Issuer]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: duplicate issuer %q", i, c.Issuer))
			continue
		}
		v.issuers = append(v.issuers, is)
		v.byName[c.Issuer] = is
		if c.Introspection != nil {
			if v.introspector != nil {
				errs = append(errs, fmt.Errorf("issuers[%d]: only one issuer may introspect opaque tokens", i))
				continue
			}
			if v.introspector, err = newIntrospector(is, c.Introspection); err != nil {
				errs = append(errs, fmt.Errorf("issuers[%d] (%s): %w", i, c.Issuer, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return v, nil
}

func (v *Verifier) newIssuer(c config.Issuer) (*issuer, error) {
	c.Audiences = slices.Clone(c.Audiences)
	c.Algorithms = slices.Clone(c.Algorithms)
	if c.Introspection != nil {
		in := *c.Introspection
		c.Introspection = &in
	}
	switch {
	case c.Issuer == "":
		return nil, errors.New("issuer is empty")
	case len(c.Audiences) == 0:
		return nil, errors.New("no audiences")
	case c.JWKSURI != "" && c.JWKSFile != "":
		return nil, errors.New("jwks_uri and jwks_file are exclusive")
	case c.JWKSURI == "" && c.JWKSFile == "" && c.Introspection == nil:
		return nil, errors.New("needs jwks_uri, jwks_file or introspection")
	}
	if slices.Contains(c.Audiences, "") {
		return nil, errors.New("empty audience")
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = slices.Clone(config.DefaultAlgorithms)
	}
	for _, alg := range c.Algorithms {
		if !jose.Supported(alg) {
			return nil, fmt.Errorf("algorithm %q is not an allowed asymmetric algorithm", alg)
		}
	}
	if c.JWKSRefresh <= 0 {
		c.JWKSRefresh = config.DefaultJWKSRefresh
	}
	is := &issuer{cfg: c}
	if c.JWKSFile != "" {
		ks, skipped, err := readJWKSFile(c.JWKSFile)
		v.logSkipped(is, skipped)
		is.setRefused(ks, skipped, err)
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		is.keys.Store(ks)
	}
	return is, nil
}

// defaultHTTPClient has an explicit timeout and refuses redirects that
// leave the original scheme and host: the redirect response then counts as
// the answer, which the callers refuse as a non-200 status.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			first := via[0].URL
			if len(via) >= 5 || req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// Verify verifies raw, a JWT access token or an opaque token, and returns
// its verified claims. The error is always an *Error.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	tok, e := v.verify(ctx, raw)
	if e != nil {
		return nil, e
	}
	return tok, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Token, *Error) {
	kind, e := classify(raw)
	if e != nil {
		return nil, e
	}
	sum := sha256.Sum256([]byte(raw))
	tok, e, ok := v.cached(sum)
	v.obs.CacheLookup(ok)
	if ok {
		return tok, e
	}
	switch kind {
	case kindJWT:
		tok, e = v.verifyJWT(ctx, raw, sum)
	default:
		if v.introspector == nil {
			return nil, fail(CodeTokenMalformed, "token is not a JWT and no issuer introspects opaque tokens")
		}
		tok, e = v.introspect(ctx, raw, sum)
	}
	if e != nil {
		return nil, e
	}
	c := *tok
	return &c, nil
}

// cached answers from the cache: ok is false on a miss, including an entry
// that ran out or whose key left the issuer's JWKS.
func (v *Verifier) cached(sum [32]byte) (*Token, *Error, bool) {
	entry, ok := v.cache.get(sum)
	if !ok {
		return nil, nil, false
	}
	now := v.now()
	if !entry.until.After(now) ||
		(entry.iss != nil && !entry.iss.keys.Load().hasThumbprint(entry.thumbprint)) {
		v.cache.remove(sum)
		return nil, nil, false
	}
	if e := checkTimes(entry.tok, now, v.skew); e != nil {
		return nil, e, true
	}
	c := *entry.tok
	return &c, nil, true
}

// CacheStats reports the verified-token cache's size and bounds.
func (v *Verifier) CacheStats() CacheStats { return v.cache.stats() }

// Forget removes the token with hash (as in Token.Hash) from the cache, so
// that the next Verify checks it again (e.g. after a revocation).
func (v *Verifier) Forget(hash string) {
	b, err := base64.RawURLEncoding.DecodeString(hash)
	if err != nil || len(b) != sha256.Size {
		return
	}
	v.cache.remove([32]byte(b))
}

func hashString(sum [32]byte) string {
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
