package decision

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// tokenEndpointResult is what the policy learns about a request to the
// authorization server's token endpoint (input.token_endpoint).
type tokenEndpointResult struct {
	grantType string
	refresh   *refreshResult // for grant_type=refresh_token only
}

type refreshResult struct {
	present bool
	valid   bool
	reused  bool
	// retried: presented again within the reuse grace, from the same
	// client and network, and let through once (with a warning).
	retried bool
	err     *token.Error
	hash    string
	tok     *token.Token
	family  store.Family
}

// tokenHashPrefix marks the jti revocation of a token without a jti, as
// rego/lib/revocation.rego asks for it: "sha256:" and the token's hash.
const tokenHashPrefix = "sha256:"

// isTokenEndpoint reports whether req is a POST to the token endpoint named
// in the policy data.
func isTokenEndpoint(req *Request, s policy.Settings) bool {
	if s.TokenEndpoint == "" || req.Method != http.MethodPost {
		return false
	}
	u := *req.URL
	u.RawQuery = ""
	return u.String() == s.TokenEndpoint
}

// tokenEndpoint tracks a refresh token presented at the token endpoint: it
// is verified (so that its family is named by its issuer and session, and a
// forged token cannot touch anyone's family), then recorded atomically as
// used. Presenting a refresh token a second time is reuse. Only hashes are
// stored.
func (e *Engine) tokenEndpoint(ctx context.Context, req *Request, s policy.Settings, now time.Time, run *run) (*tokenEndpointResult, error) {
	te := &tokenEndpointResult{grantType: req.Form.Get("grant_type")}
	if te.grantType != "refresh_token" {
		return te, nil
	}
	rr := &refreshResult{}
	te.refresh = rr
	vals := req.Form["refresh_token"]
	switch {
	case len(vals) == 0 || vals[0] == "":
		rr.err = &token.Error{Code: token.CodeTokenMissing, Message: "no refresh token"}
		return te, nil
	case len(vals) > 1:
		rr.present = true
		rr.err = &token.Error{Code: token.CodeTokenMalformed, Message: "more than one refresh token"}
		return te, nil
	}
	raw := vals[0]
	rr.present, rr.hash = true, token.HashToken(raw)
	tok, err := e.tokens.VerifyRefresh(ctx, raw)
	if err != nil {
		if !errors.As(err, &rr.err) {
			rr.err = &token.Error{Code: token.CodeTokenMalformed, Message: "refresh token could not be verified", Err: err}
		}
		return te, nil
	}
	if e.state == nil {
		return nil, errors.New("refresh-token reuse detection needs a state store")
	}
	// A revoked refresh token (RFC 7009, or a cut-off of its session,
	// subject or client issued after it) mints nothing: it is invalid, and
	// presenting it is not a use of its family.
	jti := tok.JTI
	if jti == "" {
		jti = tokenHashPrefix + tok.Hash
	}
	ref := store.TokenRef{Issuer: tok.Issuer, Subject: tok.Subject, JTI: jti, SessionID: claimString(tok.Claims, "sid"),
		ClientID: tok.ClientID, IssuedAt: tok.IssuedAt}
	switch _, revoked, err := e.state.CheckRevocation(ctx, ref); {
	case err != nil:
		return nil, fmt.Errorf("refresh-token revocation: %w", err)
	case revoked:
		rr.err = &token.Error{Code: "token_revoked", Message: "the refresh token was revoked"}
		return te, nil
	}
	rr.valid, rr.tok = true, tok
	fam := store.Family{
		ID: familyID(tok), Issuer: tok.Issuer, Subject: tok.Subject, SessionID: claimString(tok.Claims, "sid"),
		ExpiresAt: now.Add(s.RefreshMaxAge),
	}
	if run.explaining() {
		return te, e.findRefreshUse(ctx, rr, fam, now, run)
	}
	f, err := e.state.UseRefreshTokenFrom(ctx, fam, rr.hash, store.Presentation{
		From: presentedFrom(req, tok, s), Grace: s.RefreshReuseGrace,
	})
	switch {
	case err == nil:
		rr.retried = f.Retried && f.Current == rr.hash
	case errors.Is(err, store.ErrRefreshReuse), errors.Is(err, store.ErrFamilyRevoked):
		rr.reused = true
	default:
		return nil, fmt.Errorf("refresh-token family: %w", err)
	}
	rr.family = f
	return te, nil
}

// CodeRefreshTokenRetried is the warning of a refresh token presented a
// second time within data.pdp.token_endpoint.refresh_reuse_grace, from the
// same client and network, and let through once.
const CodeRefreshTokenRetried = "refresh_token_retried"

// presentedFrom names where a refresh token is presented from, for the
// reuse grace: the client (the request's client_id, its HTTP Basic user,
// else the token's) and the network of the client address (the
// fingerprint guardrail's prefixes), hashed. "" without a client address:
// a retry is then never told from reuse.
func presentedFrom(req *Request, tok *token.Token, s policy.Settings) string {
	if !req.RemoteIP.IsValid() {
		return ""
	}
	bits := s.IPv4Prefix
	if !req.RemoteIP.Unmap().Is4() {
		bits = s.IPv6Prefix
	}
	network, err := req.RemoteIP.Unmap().Prefix(bits)
	if err != nil {
		return ""
	}
	client := req.Form.Get("client_id")
	if client == "" {
		if user, _, ok := (&http.Request{Header: http.Header{"Authorization": req.Headers["authorization"]}}).BasicAuth(); ok {
			client, _ = url.QueryUnescape(user) // RFC 6749 §2.3.1
		}
	}
	if client == "" {
		client = tok.ClientID
	}
	sum := sha256.Sum256([]byte(client + "\x00" + network.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// familyID names the refresh-token family of tok: its session, or, without
// one, its subject and client at its issuer.
func familyID(tok *token.Token) string {
	key := "s\x00" + tok.Issuer + "\x00" + claimString(tok.Claims, "sid")
	if claimString(tok.Claims, "sid") == "" {
		key = "u\x00" + tok.Issuer + "\x00" + tok.Subject + "\x00" + tok.ClientID
	}
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func claimString(claims ast.Object, name string) string {
	if claims == nil {
		return ""
	}
	if t := claims.Get(ast.StringTerm(name)); t != nil {
		if s, ok := t.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}

// findRefreshUse is, for an explanation, what UseRefreshTokenFrom would
// find, read only: a refresh token whose family is found by its hash was
// presented before, which is reuse (a retry within the reuse grace is not
// told from reuse, nor a family revoked since).
func (e *Engine) findRefreshUse(ctx context.Context, rr *refreshResult, fam store.Family, now time.Time, run *run) error {
	ff, ok := e.state.(familyFinder)
	if !ok {
		return fmt.Errorf("%w: the state store cannot find a refresh token's family without writing", ErrExplainUnsupported)
	}
	f, err := ff.FindFamily(ctx, rr.hash)
	switch {
	case err == nil:
		rr.reused, rr.family = true, f
		run.writes(WriteRefreshUse, "the refresh token's use was not recorded; it was presented before (reuse)")
	case errors.Is(err, store.ErrNotFound):
		// As the family the use would have created or moved on.
		fam.Current, fam.CreatedAt = rr.hash, now
		rr.family = fam
		run.writes(WriteRefreshUse, "the refresh token's use was not recorded; it was not presented before")
	default:
		return fmt.Errorf("refresh-token family: %w", err)
	}
	return nil
}
