package dpop

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/uri"
)

// Replay is the single-use memory of proofs. SpendDPoPJTI must be atomic:
// of any number of calls with one key before exp, exactly one returns true.
// *store.Bolt implements it, and *store.Shared across replicas.
type Replay interface {
	SpendDPoPJTI(ctx context.Context, key string, exp time.Time) (fresh bool, err error)
}

// ReplayReader tells, without writing, whether a proof was spent; a Replay
// that implements it lets Check explain a decision (*store.Bolt does).
type ReplayReader interface {
	DPoPJTISpent(ctx context.Context, key string) (spent bool, err error)
}

// ErrCheckUnsupported is Check's error when the replay cache cannot be
// read without writing.
var ErrCheckUnsupported = errors.New("dpop: the replay cache cannot tell a spent proof without spending it")

// Defaults of Options.
const (
	DefaultIATWindow = 60 * time.Second
	DefaultIATLeeway = 5 * time.Second
	// NoLeeway, as Options.IATLeeway, allows no proof from the future at
	// all (zero means DefaultIATLeeway).
	NoLeeway time.Duration = -1
)

// Claim limits.
const (
	// MaxJTILength bounds the jti claim, in bytes.
	MaxJTILength = 256
	// maxNonceLength bounds the nonce claim, in bytes.
	maxNonceLength = 256
	// maxIATWindow bounds IATWindow and IATLeeway: proofs are meant to be
	// minted just before each request.
	maxIATWindow = time.Hour
)

// SupportedAlgorithms are the asymmetric JWS algorithms a proof may use, in
// the order of the default allow-list.
var SupportedAlgorithms = []string{
	"ES256", "ES384", "ES512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"EdDSA",
}

// Options configure a Verifier. The zero value gives the defaults.
type Options struct {
	// Algorithms is the allow-list of proof algorithms, a subset of
	// SupportedAlgorithms. Default: all of them.
	Algorithms []string
	// IATWindow is how old a proof may be. Default DefaultIATWindow.
	IATWindow time.Duration
	// IATLeeway is how far ahead of now a proof's iat may be (clock skew).
	// Default DefaultIATLeeway; NoLeeway for none.
	IATLeeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Nonces turns server nonces on: every proof must then carry a nonce
	// that Nonces.Valid accepts. Nil: nonces are not required.
	Nonces *Nonces
}

// Verifier checks DPoP proofs. It is immutable and safe for concurrent use.
type Verifier struct {
	replay Replay
	algs   []string
	window time.Duration
	leeway time.Duration
	now    func() time.Time
	nonces *Nonces
}

// NewVerifier returns a verifier that remembers spent proofs in replay.
func NewVerifier(replay Replay, opts Options) (*Verifier, error) {
	if replay == nil {
		return nil, errors.New("dpop: a replay cache is required")
	}
	v := &Verifier{
		replay: replay,
		window: opts.IATWindow,
		leeway: opts.IATLeeway,
		now:    opts.Now,
		nonces: opts.Nonces,
	}
	var problems []error
	if len(opts.Algorithms) == 0 {
		v.algs = slices.Clone(SupportedAlgorithms)
	}
	for _, a := range opts.Algorithms {
		switch {
		case !slices.Contains(SupportedAlgorithms, a):
			problems = append(problems, fmt.Errorf("dpop: algorithm %q is not a supported asymmetric algorithm", a))
		case !slices.Contains(v.algs, a):
			v.algs = append(v.algs, a)
		}
	}
	if v.window == 0 {
		v.window = DefaultIATWindow
	}
	switch v.leeway {
	case 0:
		v.leeway = DefaultIATLeeway
	case NoLeeway:
		v.leeway = 0
	}
	if v.window < 0 || v.window > maxIATWindow {
		problems = append(problems, fmt.Errorf("dpop: iat window must be between 0 and %s", maxIATWindow))
	}
	if v.leeway < 0 || v.leeway > maxIATWindow {
		problems = append(problems, fmt.Errorf("dpop: iat leeway must be between 0 and %s", maxIATWindow))
	}
	if v.now == nil {
		v.now = time.Now
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return v, nil
}

// Algorithms returns the allow-list, for the algs parameter of a
// WWW-Authenticate: DPoP challenge (RFC 9449 §7.1).
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// Nonces returns the nonce source, nil when server nonces are off.
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Request is what Verify checks a proof against.
type Request struct {
	// Proofs are every DPoP header value as received (0, 1 or more).
	Proofs []string
	// Method is the request method.
	Method string
	// URL is the request URL, normalised by uri.Normalize. Its query and
	// fragment are ignored.
	URL *url.URL
	// AccessToken is the presented access token, "" when there is none
	// (a proof sent to the token endpoint): ath must then be absent.
	AccessToken string
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof key, base64url:
	// the value a bound token's cnf.jkt must have (D10).
	JKT string
	// Alg is the proof's signature algorithm.
	Alg string
	// IssuedAt is the proof's iat.
	IssuedAt time.Time
	// JTIHash is the replay key the proof was spent under,
	// base64url(SHA-256(JKT || 0x00 || jti)): it identifies the proof in
	// logs without repeating the client-chosen jti.
	JTIHash string
}

// Names of header members and claims.
var (
	hTyp  = ast.StringTerm("typ")
	hAlg  = ast.StringTerm("alg")
	hJWK  = ast.StringTerm("jwk")
	hCrit = ast.StringTerm("crit")
	hB64  = ast.StringTerm("b64")

	cJTI   = ast.StringTerm("jti")
	cHTM   = ast.StringTerm("htm")
	cHTU   = ast.StringTerm("htu")
	cIAT   = ast.StringTerm("iat")
	cATH   = ast.StringTerm("ath")
	cNonce = ast.StringTerm("nonce")
)

// Verify checks the request's DPoP proof (RFC 9449 §4.3) and spends its jti.
// A refused proof gives an *Error; a failure of the replay cache, or a
// Request without method or URL, a plain error (fail closed).
//
// The checks run in the order of the rules: D1 one well-formed compact JWS;
// D2 header; D3 signature with the header's jwk; D4 required claims; D5
// htm; D6 htu; D7 iat; D9 ath; D12 nonce; and D8, the replay check, last,
// so that no refused proof spends a jti.
func (v *Verifier) Verify(ctx context.Context, r Request) (*Proof, error) {
	return v.verify(ctx, r, true)
}

// Check is Verify without spending the proof's jti: every check runs the
// same, and D8 only reads whether the jti was already spent (a spent one is
// the same CodeReplayed error). It changes nothing, for explaining a
// decision; ErrCheckUnsupported when the replay cache cannot be read so.
func (v *Verifier) Check(ctx context.Context, r Request) (*Proof, error) {
	return v.verify(ctx, r, false)
}

func (v *Verifier) verify(ctx context.Context, r Request, spend bool) (*Proof, error) {
	if r.Method == "" || r.URL == nil {
		return nil, errors.New("dpop: request method and URL are required")
	}
	reqURL, err := uri.Normalize(r.URL.String())
	if err != nil {
		return nil, fmt.Errorf("dpop: request URL: %w", err)
	}
	now := v.now()

	// D1
	switch len(r.Proofs) {
	case 0:
		return nil, invalid("no DPoP proof")
	case 1:
	default:
		return nil, invalid("more than one DPoP proof")
	}
	cp, e := parseCompact(r.Proofs[0])
	if e != nil {
		return nil, e
	}

	// D2
	alg, key, e := v.checkHeader(cp.header)
	if e != nil {
		return nil, e
	}

	// D3
	if err := verifySignature(key, alg, cp.raw, cp.signature); err != nil {
		return nil, invalidWrap("DPoP proof signature is invalid", err)
	}

	// D4
	c, e := readClaims(cp.payload, r.AccessToken != "")
	if e != nil {
		return nil, e
	}

	// D5
	if c.htm != r.Method {
		return nil, invalid("DPoP proof htm does not match the request method")
	}

	// D6
	// The htu goes through the same path rules as the request URL: a
	// spelling they refuse is never the request's (which got this far only
	// with a path they accept), so the proof is invalid.
	htu, err := uri.Normalize(c.htu)
	switch {
	case errors.Is(err, uri.ErrPathInvalid):
		return nil, invalidWrap("DPoP proof htu has a path the request-path rules refuse", err)
	case err != nil:
		return nil, invalidWrap("DPoP proof htu is not an absolute http(s) URL", err)
	}
	if withoutQuery(htu) != withoutQuery(reqURL) {
		return nil, invalid("DPoP proof htu does not match the request URL")
	}

	// D7
	switch {
	case c.iat.Before(now.Add(-v.window)):
		return nil, invalid("DPoP proof is too old")
	case c.iat.After(now.Add(v.leeway)):
		return nil, invalid("DPoP proof iat is in the future")
	}

	// D9
	if r.AccessToken != "" {
		sum := sha256.Sum256([]byte(r.AccessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(c.ath), []byte(want)) != 1 {
			return nil, invalid("DPoP proof ath does not match the access token")
		}
	}

	// D12
	if v.nonces != nil {
		switch {
		case !c.hasNonce:
			return nil, &Error{Code: CodeNonceRequired, Message: "DPoP proof must carry a server nonce"}
		case !v.nonces.Valid(c.nonce, now):
			return nil, &Error{Code: CodeNonceRequired, Message: "DPoP proof nonce is stale or invalid"}
		}
	}

	// D8
	replayKey := ReplayKey(key.jkt, c.jti)
	exp := c.iat.Add(v.window + v.leeway)
	if minExp := now.Add(time.Second); exp.Before(minExp) {
		exp = minExp
	}
	var fresh bool
	if spend {
		fresh, err = v.replay.SpendDPoPJTI(ctx, replayKey, exp)
	} else if rr, ok := v.replay.(ReplayReader); !ok {
		return nil, ErrCheckUnsupported
	} else {
		var spent bool
		spent, err = rr.DPoPJTISpent(ctx, replayKey)
		fresh = !spent
	}
	if err != nil {
		return nil, fmt.Errorf("dpop: replay check: %w", err)
	}
	if !fresh {
		return nil, &Error{Code: CodeReplayed, Message: "DPoP proof has already been used"}
	}
	return &Proof{JKT: key.jkt, Alg: alg, IssuedAt: c.iat, JTIHash: replayKey}, nil
}

// ReplayKey is the key a proof is spent under:
// base64url(SHA-256(jkt || 0x00 || jti)), 43 bytes. Binding the key
// thumbprint in means one client cannot burn another client's jti values.
func ReplayKey(jkt, jti string) string {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// checkHeader applies D2 and returns the algorithm and the key.
func (v *Verifier) checkHeader(h ast.Object) (string, *proofKey, *Error) {
	// No JWS extension is understood: any crit (even []) is refused, and
	// b64 (RFC 7797) whether or not crit lists it.
	if h.Get(hCrit) != nil {
		return "", nil, invalid(`DPoP proof header "crit" is not supported`)
	}
	if h.Get(hB64) != nil {
		return "", nil, invalid(`DPoP proof header "b64" is not supported`)
	}
	typ, _, err := optString(h, hTyp)
	if err != nil || !isDPoPType(typ) {
		return "", nil, invalid(`DPoP proof typ must be "dpop+jwt"`)
	}
	alg, ok, err := optString(h, hAlg)
	switch {
	case err != nil || !ok:
		return "", nil, invalid(`DPoP proof header "alg" is missing`)
	case !slices.Contains(v.algs, alg):
		return "", nil, invalid("DPoP proof alg is not allowed")
	}
	// The key comes from the jwk header only; kid, jku, x5u and x5c are
	// never used to find one.
	key, e := parseJWK(h.Get(hJWK), alg)
	if e != nil {
		return "", nil, e
	}
	return alg, key, nil
}

// isDPoPType reports whether typ names the media type application/dpop+jwt:
// compared case-insensitively, and with "application/" optional
// (RFC 7515 §4.1.9).
func isDPoPType(typ string) bool {
	const full = "application/dpop+jwt"
	return strings.EqualFold(typ, full) || strings.EqualFold(typ, full[len("application/"):])
}

// proofClaims are the claims Verify uses.
type proofClaims struct {
	jti, htm, htu string
	iat           time.Time
	ath           string
	nonce         string
	hasNonce      bool
}

// readClaims applies D4: jti, htm, htu and iat are required and typed; ath
// is required when a token is presented and refused otherwise.
func readClaims(p ast.Object, withToken bool) (proofClaims, *Error) {
	var c proofClaims
	jti, ok, err := optString(p, cJTI)
	switch {
	case !ok:
		return c, invalid(`DPoP proof claim "jti" is missing`)
	case err != nil || jti == "" || len(jti) > MaxJTILength:
		return c, invalid(fmt.Sprintf(`DPoP proof claim "jti" must be a string of 1 to %d bytes`, MaxJTILength))
	}
	c.jti = jti
	if c.htm, ok, err = optString(p, cHTM); !ok {
		return c, invalid(`DPoP proof claim "htm" is missing`)
	} else if err != nil || c.htm == "" {
		return c, invalid(`DPoP proof claim "htm" must be a non-empty string`)
	}
	if c.htu, ok, err = optString(p, cHTU); !ok {
		return c, invalid(`DPoP proof claim "htu" is missing`)
	} else if err != nil || c.htu == "" {
		return c, invalid(`DPoP proof claim "htu" must be a non-empty string`)
	}
	iat := p.Get(cIAT)
	if iat == nil {
		return c, invalid(`DPoP proof claim "iat" is missing`)
	}
	if c.iat, err = jose.NumericDate(iat.Value); err != nil {
		return c, invalid(`DPoP proof claim "iat" must be a number of seconds from 1970 to 2262`)
	}
	c.ath, ok, err = optString(p, cATH)
	switch {
	case withToken && !ok:
		return c, invalid(`DPoP proof claim "ath" is missing`)
	case !withToken && ok:
		return c, invalid(`DPoP proof claim "ath" is present but no access token was presented`)
	case err != nil:
		return c, invalid(`DPoP proof claim "ath" must be a string`)
	}
	c.nonce, c.hasNonce, err = optString(p, cNonce)
	if err != nil || (c.hasNonce && (c.nonce == "" || len(c.nonce) > maxNonceLength)) {
		return c, invalid(fmt.Sprintf(`DPoP proof claim "nonce" must be a string of 1 to %d bytes`, maxNonceLength))
	}
	return c, nil
}

// withoutQuery is the normalised URL's scheme, authority and path: what
// htu is compared on (RFC 9449 §4.3 item 9).
func withoutQuery(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}
