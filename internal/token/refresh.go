package token

import (
	"context"
	"crypto/sha256"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// VerifyRefresh verifies a refresh token presented at the token endpoint,
// so that refresh-token reuse can be tied to its issuer, subject and
// session. A JWT refresh token passes the same shape, issuer, algorithm and
// signature checks as an access token (J1–J4, J7, J9, J10), but its typ
// must not name an access token, and its audience (the authorization
// server) is not checked. An opaque one is introspected at the introspecting
// issuer with token_type_hint=refresh_token. Results are never cached. The
// error is always an *Error.
func (v *Verifier) VerifyRefresh(ctx context.Context, raw string) (*Token, error) {
	kind, e := classify(raw)
	if e != nil {
		return nil, e
	}
	sum := sha256.Sum256([]byte(raw))
	var tok *Token
	if kind == kindJWT {
		tok, e = v.verifyRefreshJWT(ctx, raw, sum)
	} else {
		tok, e = v.introspectRefresh(ctx, raw, sum)
	}
	if e != nil {
		return nil, e
	}
	return tok, nil
}

func (v *Verifier) verifyRefreshJWT(ctx context.Context, raw string, sum [32]byte) (*Token, *Error) {
	jwt, hdr, is, e := v.parseForIssuer(raw)
	if e != nil {
		return nil, e
	}
	if e := checkRefreshTyp(hdr.typ); e != nil {
		return nil, e
	}
	if is.cfg.JWKSURI == "" && is.cfg.JWKSFile == "" {
		return nil, fail(CodeSignatureInvalid, "no keys configured for this issuer")
	}
	if _, e := v.verifyWithIssuerKeys(ctx, is, hdr, raw, jwt.signature); e != nil {
		return nil, e
	}
	if e := checkRefreshPayloadKind(jwt.payload); e != nil {
		return nil, e
	}
	tok := &Token{Hash: hashString(sum), Source: SourceJWT, Issuer: is.cfg.Issuer, Claims: jwt.payload, Alg: hdr.alg, Typ: hdr.typ, Kid: hdr.kid}
	if e := readClaims(tok, jwt.payload, nil, refreshJWTRules); e != nil {
		return nil, e
	}
	if e := checkTimes(tok, v.now(), v.skew); e != nil {
		return nil, e
	}
	return tok, nil
}

func (v *Verifier) introspectRefresh(ctx context.Context, raw string, sum [32]byte) (*Token, *Error) {
	in := v.introspector
	if in == nil {
		return nil, fail(CodeTokenMalformed, "token is not a JWT and no issuer introspects opaque tokens")
	}
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	obj, err := in.postHint(ctx, v.client, raw, "refresh_token")
	v.obs.Introspected(introspectionOutcome(obj, err))
	if err != nil {
		return nil, failWrap(CodeIntrospectionFailed, "token introspection failed", err)
	}
	switch active := obj.Get(cActive); {
	case active == nil:
		return nil, fail(CodeIntrospectionFailed, `introspection response has no "active" member`)
	case active.Value.Compare(ast.Boolean(false)) == 0:
		return nil, fail(CodeInactive, "token is not active")
	case active.Value.Compare(ast.Boolean(true)) != 0:
		return nil, fail(CodeIntrospectionFailed, `introspection "active" is not the boolean true`)
	}
	switch iss, ok, err := optString(obj, cIss); {
	case err != nil:
		return nil, fail(CodeIntrospectionFailed, `introspection "iss" is not a string`)
	case ok && iss != in.is.cfg.Issuer:
		return nil, fail(CodeIssuerUntrusted, "introspection names another issuer")
	}
	switch tt, ok, err := optString(obj, cTokenType); {
	case err != nil:
		return nil, fail(CodeIntrospectionFailed, `introspection "token_type" is not a string`)
	case ok && !strings.Contains(strings.ToLower(tt), "refresh"):
		return nil, fail(CodeTypeInvalid, "an access token is not a refresh token")
	}
	tok := &Token{Hash: hashString(sum), Source: SourceIntrospection, Issuer: in.is.cfg.Issuer, Claims: obj}
	if e := readClaims(tok, obj, nil, refreshIntroRules); e != nil {
		return nil, e
	}
	if e := checkTimes(tok, v.now(), v.skew); e != nil {
		return nil, e
	}
	return tok, nil
}

// checkRefreshTyp accepts the typ of a refresh token: none, JWT, or a type
// naming a refresh token. Access tokens, ID tokens, proofs and SETs are not
// refresh tokens.
func checkRefreshTyp(typ string) *Error {
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	if t == "" || t == "jwt" || strings.Contains(t, "refresh") {
		return nil
	}
	return fail(CodeTypeInvalid, "JWT type is not a refresh token type")
}

// checkRefreshPayloadKind refuses payloads of other kinds of JWT.
func checkRefreshPayloadKind(claims ast.Object) *Error {
	switch {
	case claims.Get(cEvents) != nil:
		return fail(CodeTypeInvalid, "a security event token is not a refresh token")
	case claims.Get(cHtm) != nil && claims.Get(cHtu) != nil:
		return fail(CodeTypeInvalid, "a DPoP proof is not a refresh token")
	case claims.Get(cNonce) != nil || claims.Get(cAtHash) != nil || claims.Get(cCHash) != nil:
		return fail(CodeTypeInvalid, "an ID token is not a refresh token")
	}
	if use, ok, _ := optString(claims, cTokenUse); ok && use != "refresh" {
		return fail(CodeTypeInvalid, `token_use is not "refresh"`)
	}
	return nil
}
