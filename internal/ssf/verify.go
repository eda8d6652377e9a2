package ssf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// Limits on a SET.
const (
	// MaxSETSize bounds a SET, pushed or polled.
	MaxSETSize = 64 << 10
	// maxHeaderDepth and maxPayloadDepth bound the JSON nesting.
	maxHeaderDepth  = 4
	maxPayloadDepth = 10
	// maxKIDLen and maxJTILen bound the identifiers read from a SET.
	maxKIDLen = 256
	maxJTILen = 256
)

// allowedAlgs are the signature algorithms a SET may use. Symmetric
// algorithms and "none" are never accepted.
var allowedAlgs = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

// SET is a verified security event token. Its ast values are shared:
// treat them as read-only.
type SET struct {
	// Issuer is the "iss" of the SET, a configured transmitter.
	Issuer string
	// JTI is the SET's "jti".
	JTI string
	// JTIHash identifies the SET in logs: hex of the first 16 bytes of
	// SHA-256(iss || 0x00 || jti).
	JTIHash string
	// IssuedAt is the SET's "iat".
	IssuedAt time.Time
	// EventType is the URI of its single event.
	EventType string
	// Event is the event's payload.
	Event ast.Object
	// Subject is the event's subject: the top-level "sub_id", or the
	// event's legacy "subject" member.
	Subject ast.Object

	// tx is the transmitter that signed it.
	tx *transmitter
}

// VerifierOptions tune a Verifier. Zero fields take their defaults.
type VerifierOptions struct {
	// HTTPClient fetches jwks_uri. Default: a client with FetchTimeout
	// that does not follow redirects.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch, whatever the client's own
	// timeout. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// JWKSRefresh is the age after which keys from a jwks_uri are fetched
	// again. Default DefaultJWKSRefresh.
	JWKSRefresh time.Duration
	// JWKSMinRefetch is the least time between two fetches of one jwks_uri
	// (an unknown kid asks for one). Default DefaultJWKSMinRefetch.
	JWKSMinRefetch time.Duration
	// MaxAge is how old (by iat) a SET may be. Default DefaultMaxAge.
	MaxAge time.Duration
	// Skew is how far in the future a SET's iat may lie. Default
	// DefaultSkew; NoSkew for none.
	Skew time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives key-set reports. Default slog.Default().
	Logger *slog.Logger
}

// NoSkew, as a Skew, allows no skew at all (zero means DefaultSkew).
const NoSkew time.Duration = -1

// Defaults of VerifierOptions.
const (
	DefaultFetchTimeout   = 10 * time.Second
	DefaultJWKSRefresh    = 5 * time.Minute
	DefaultJWKSMinRefetch = 30 * time.Second
)

func (o VerifierOptions) withDefaults() VerifierOptions {
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient(o.FetchTimeout)
	}
	if o.JWKSRefresh <= 0 {
		o.JWKSRefresh = DefaultJWKSRefresh
	}
	if o.JWKSMinRefetch <= 0 {
		o.JWKSMinRefetch = DefaultJWKSMinRefetch
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	switch {
	case o.Skew == 0:
		o.Skew = DefaultSkew
	case o.Skew < 0: // NoSkew
		o.Skew = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// defaultHTTPClient has a timeout and refuses redirects: a JWKS or poll
// endpoint that moves is a configuration change, not something to follow.
func defaultHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// transmitter is a configured transmitter with its keys.
type transmitter struct {
	cfg  config.Transmitter
	keys *keySet
}

// Verifier verifies SETs against the configured transmitters. It is safe
// for concurrent use.
type Verifier struct {
	byIssuer map[string]*transmitter
	maxAge   time.Duration
	skew     time.Duration
	now      func() time.Time
}

// NewVerifier loads every transmitter's keys: a jwks_file must load, a
// jwks_uri is fetched once now and, when that fails, again on demand.
func NewVerifier(ctx context.Context, cfg []config.Transmitter, opts VerifierOptions) (*Verifier, error) {
	opts = opts.withDefaults()
	v := &Verifier{byIssuer: make(map[string]*transmitter, len(cfg)), maxAge: opts.MaxAge, skew: opts.Skew, now: opts.Now}
	var errs []error
	for i, tc := range cfg {
		p := fmt.Sprintf("ssf.transmitters[%d]", i)
		switch {
		case tc.Issuer == "":
			errs = append(errs, fmt.Errorf("%s.issuer: must be set", p))
			continue
		case v.byIssuer[tc.Issuer] != nil:
			errs = append(errs, fmt.Errorf("%s.issuer: duplicate transmitter %q", p, tc.Issuer))
			continue
		case tc.Audience == "":
			errs = append(errs, fmt.Errorf("%s.audience: must be set", p))
			continue
		case (tc.JWKSURI == "") == (tc.JWKSFile == ""):
			errs = append(errs, fmt.Errorf("%s: needs exactly one of jwks_uri and jwks_file", p))
			continue
		}
		tc.TokenIssuers = slices.Clone(tc.TokenIssuers)
		if len(tc.TokenIssuers) == 0 {
			tc.TokenIssuers = []string{tc.Issuer}
		}
		ks := &keySet{
			issuer:     tc.Issuer,
			uri:        tc.JWKSURI,
			client:     opts.HTTPClient,
			timeout:    opts.FetchTimeout,
			refresh:    opts.JWKSRefresh,
			minRefetch: opts.JWKSMinRefetch,
			now:        opts.Now,
			log:        opts.Logger,
		}
		if tc.JWKSFile != "" {
			if err := ks.loadFile(tc.JWKSFile); err != nil {
				errs = append(errs, fmt.Errorf("%s.jwks_file: %w", p, err))
				continue
			}
		} else {
			// A transmitter whose keys cannot be fetched yet must not keep
			// the PDP from starting; its SETs are refused until they can.
			_ = ks.fetch(ctx)
		}
		v.byIssuer[tc.Issuer] = &transmitter{cfg: tc, keys: ks}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ssf: %w", err)
	}
	return v, nil
}

// Verify checks a compact-serialized SET and returns it. A refusal is an
// *Error carrying the RFC 8935 code.
func (v *Verifier) Verify(ctx context.Context, raw []byte) (*SET, error) {
	return v.verify(ctx, raw, "")
}

// verify is Verify; a non-empty onlyIssuer refuses SETs of any other
// transmitter (a poll endpoint answers for its own transmitter only).
func (v *Verifier) verify(ctx context.Context, raw []byte, onlyIssuer string) (*SET, error) {
	// Shape before anything is decoded.
	switch {
	case len(raw) == 0:
		return nil, refuse(CodeInvalidRequest, "the request holds no SET")
	case len(raw) > MaxSETSize:
		return nil, refuse(CodeInvalidRequest, "the SET is too large")
	case raw[0] == '{':
		return nil, refuse(CodeInvalidRequest, "the SET must use the JWS compact serialization")
	}
	for _, c := range raw {
		if !isB64URL(c) && c != '.' {
			return nil, refuse(CodeInvalidRequest, "the SET is not a compact JWS")
		}
	}
	switch bytes.Count(raw, []byte{'.'}) {
	case 2:
	case 4:
		return nil, refuse(CodeInvalidRequest, "encrypted SETs are not accepted")
	default:
		return nil, refuse(CodeInvalidRequest, "the SET is not a compact JWS")
	}
	segs := bytes.SplitN(raw, []byte{'.'}, 3)
	hdrJSON, err := jose.B64.DecodeString(string(segs[0]))
	if err != nil {
		return nil, refuseErr(CodeInvalidRequest, "the SET header is not base64url", err)
	}
	payloadJSON, err := jose.B64.DecodeString(string(segs[1]))
	if err != nil {
		return nil, refuseErr(CodeInvalidRequest, "the SET payload is not base64url", err)
	}
	alg, kid, rerr := checkHeader(hdrJSON)
	if rerr != nil {
		return nil, rerr
	}
	sig, err := jose.B64.DecodeString(string(segs[2]))
	if err != nil || len(sig) == 0 {
		return nil, refuseErr(CodeInvalidRequest, "the SET signature is missing or not base64url", err)
	}
	claims, rerr := parseObject(payloadJSON, maxPayloadDepth, "the SET claims")
	if rerr != nil {
		return nil, rerr
	}

	// The issuer picks the key set; nothing else is trusted before the
	// signature is checked.
	iss, ok := stringMember(claims, "iss")
	if !ok {
		return nil, refuse(CodeInvalidIssuer, "the SET has no iss string")
	}
	t := v.byIssuer[iss]
	if t == nil || (onlyIssuer != "" && iss != onlyIssuer) {
		return nil, refuse(CodeInvalidIssuer, "the SET issuer is not a transmitter of this receiver")
	}
	key, found := t.keys.key(ctx, kid)
	if !found {
		return nil, refuse(CodeInvalidKey, "the SET is signed with a key the transmitter has not published")
	}
	if !key.fits(alg) {
		return nil, refuse(CodeInvalidKey, "the transmitter key does not fit the SET's algorithm")
	}
	// The same shape rules as for access tokens and DPoP proofs: exact
	// signature size, ECDSA R||S with 0 < r, s < n.
	if err := jose.VerifySignature(jose.Key{Public: key.pub, ECOrder: key.ecOrder}, alg, string(raw), sig); err != nil {
		return nil, refuseErr(CodeAuthenticationFailed, "the SET signature does not verify", err)
	}

	// Authentic from here on: check the claims.
	return v.checkClaims(claims, t)
}

func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// checkHeader validates the protected header and returns its alg and kid.
func checkHeader(data []byte) (alg, kid string, _ *Error) {
	hdr, rerr := parseObject(data, maxHeaderDepth, "the SET header")
	if rerr != nil {
		return "", "", rerr
	}
	alg, ok := stringMember(hdr, "alg")
	switch {
	case !ok:
		return "", "", refuse(CodeInvalidRequest, "the SET header has no alg")
	case strings.EqualFold(alg, "none"):
		return "", "", refuse(CodeAuthenticationFailed, "unsigned SETs are not accepted")
	case !slices.Contains(allowedAlgs, alg):
		return "", "", refuse(CodeAuthenticationFailed, "the SET's signature algorithm is not accepted")
	}
	typ, ok := stringMember(hdr, "typ")
	if !ok || !(strings.EqualFold(typ, "secevent+jwt") || strings.EqualFold(typ, "application/secevent+jwt")) {
		return "", "", refuse(CodeInvalidRequest, "the SET header typ must be secevent+jwt")
	}
	// No JWS extension is understood, so none may be critical; b64 and zip
	// change what is signed or how it is read.
	for _, name := range []string{"crit", "b64", "zip", "enc"} {
		if hdr.Get(ast.StringTerm(name)) != nil {
			return "", "", refuse(CodeInvalidRequest, "the SET header uses an unsupported JOSE extension")
		}
	}
	// jku, x5u, jwk and x5c are never used to find a key: the key comes
	// from the transmitter's configured JWKS by kid only.
	kid, ok = stringMember(hdr, "kid")
	if !ok || kid == "" || len(kid) > maxKIDLen {
		return "", "", refuse(CodeInvalidKey, "the SET header must name its key with kid")
	}
	return alg, kid, nil
}

// checkClaims validates the claims of an authentic SET.
func (v *Verifier) checkClaims(claims ast.Object, t *transmitter) (*SET, error) {
	switch aud := member(claims, "aud").(type) {
	case ast.String:
		if string(aud) != t.cfg.Audience {
			return nil, refuse(CodeInvalidAudience, "the SET audience is not this receiver")
		}
	case *ast.Array:
		found := false
		for i := range aud.Len() {
			s, ok := aud.Elem(i).Value.(ast.String)
			if !ok {
				return nil, refuse(CodeInvalidRequest, "the SET aud must hold strings")
			}
			found = found || string(s) == t.cfg.Audience
		}
		if !found {
			return nil, refuse(CodeInvalidAudience, "the SET audience is not this receiver")
		}
	default:
		return nil, refuse(CodeInvalidAudience, "the SET has no aud")
	}
	if member(claims, "sub") != nil {
		return nil, refuse(CodeInvalidRequest, "a SET must not carry sub (use sub_id)")
	}
	if member(claims, "exp") != nil {
		return nil, refuse(CodeInvalidRequest, "a SET must not carry exp")
	}
	jti, ok := stringMember(claims, "jti")
	if !ok || jti == "" || len(jti) > maxJTILen {
		return nil, refuse(CodeInvalidRequest, "the SET needs a jti string of at most 256 bytes")
	}
	iat, ok := numericDate(member(claims, "iat"))
	if !ok {
		return nil, refuse(CodeInvalidRequest, "the SET needs iat as a NumericDate")
	}
	// A SET is accepted only while it is young enough to be remembered:
	// an old one could be a replay the receiver has forgotten.
	switch now := v.now(); {
	case iat.After(now.Add(v.skew)):
		return nil, refuse(CodeInvalidRequest, "the SET is issued in the future")
	case now.Sub(iat) > v.maxAge:
		return nil, refuse(CodeInvalidRequest, "the SET is too old")
	}

	events, ok := member(claims, "events").(ast.Object)
	if !ok {
		return nil, refuse(CodeInvalidRequest, "the SET needs an events object")
	}
	if events.Len() != 1 {
		return nil, refuse(CodeInvalidRequest, "the SET must carry exactly one event")
	}
	evKey := events.Keys()[0]
	eventType := string(evKey.Value.(ast.String))
	if eventType == "" {
		return nil, refuse(CodeInvalidRequest, "the event type must be a URI")
	}
	event, ok := events.Get(evKey).Value.(ast.Object)
	if !ok {
		return nil, refuse(CodeInvalidRequest, "the event payload must be an object")
	}

	var subject ast.Object
	subID, legacy := member(claims, "sub_id"), member(event, "subject")
	switch {
	case subID != nil && legacy != nil && subID.Compare(legacy) != 0:
		return nil, refuse(CodeInvalidRequest, "sub_id and the event's subject disagree")
	case subID != nil:
		subject, ok = subID.(ast.Object)
	case legacy != nil:
		subject, ok = legacy.(ast.Object)
	default:
		return nil, refuse(CodeInvalidRequest, "the SET names no subject (sub_id)")
	}
	if !ok {
		return nil, refuse(CodeInvalidRequest, "the subject must be an object")
	}

	return &SET{
		Issuer:    t.cfg.Issuer,
		JTI:       jti,
		JTIHash:   jtiHash(t.cfg.Issuer, jti),
		IssuedAt:  iat,
		EventType: eventType,
		Event:     event,
		Subject:   subject,
		tx:        t,
	}, nil
}

// jtiHash identifies a SET in logs and in the replay memory.
func jtiHash(iss, jti string) string {
	h := sha256.New()
	h.Write([]byte(iss))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// parseObject parses strict JSON that must be an object.
func parseObject(data []byte, depth int, what string) (ast.Object, *Error) {
	// The parser's errors quote parts of the input; they are not kept, so
	// that no part of a SET reaches a log line.
	v, err := jsonast.Parse(data, depth)
	switch {
	case errors.Is(err, jsonast.ErrDuplicateMember):
		return nil, refuse(CodeInvalidRequest, what+": a member is named twice")
	case errors.Is(err, jsonast.ErrTooDeep):
		return nil, refuse(CodeInvalidRequest, what+": nested too deeply")
	case err != nil:
		return nil, refuse(CodeInvalidRequest, what+": not valid JSON")
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, refuse(CodeInvalidRequest, what+": not a JSON object")
	}
	return obj, nil
}

// member returns the value of obj's member name, or nil.
func member(obj ast.Object, name string) ast.Value {
	t := obj.Get(ast.StringTerm(name))
	if t == nil {
		return nil
	}
	return t.Value
}

// stringMember returns obj's member name when it is a string.
func stringMember(obj ast.Object, name string) (string, bool) {
	s, ok := member(obj, name).(ast.String)
	return string(s), ok
}

// numericDate reads a NumericDate (jose.NumericDate: 1970 to 2262,
// fractions allowed); false when v is none.
func numericDate(v ast.Value) (time.Time, bool) {
	t, err := jose.NumericDate(v)
	return t, err == nil
}
