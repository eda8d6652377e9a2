package token

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxKidLength bounds the kid header; real key ids are far shorter.
const maxKidLength = 256

// Names looked up in headers and claims, as interned terms.
var (
	hAlg  = ast.StringTerm("alg")
	hTyp  = ast.StringTerm("typ")
	hKid  = ast.StringTerm("kid")
	hCrit = ast.StringTerm("crit")
	hB64  = ast.StringTerm("b64")
)

// joseHeader is what the verifier uses of a JWS protected header. jku, x5u,
// jwk and x5c are deliberately never read (J3): keys come only from the
// issuer's configured key set.
type joseHeader struct {
	alg, typ, kid string
	hasKid        bool
}

// readHeader checks the header members the verifier relies on (J4, and the
// types of alg, typ and kid).
func readHeader(h ast.Object) (joseHeader, *Error) {
	var hdr joseHeader
	// J4: no extension is understood, so any crit (even []) is refused,
	// and b64 (RFC 7797) is refused whether or not crit lists it.
	if h.Get(hCrit) != nil {
		return hdr, fail(CodeTokenMalformed, `JWT header "crit" is not supported`)
	}
	if h.Get(hB64) != nil {
		return hdr, fail(CodeTokenMalformed, `JWT header "b64" is not supported`)
	}
	alg, ok, err := optString(h, hAlg)
	switch {
	case err != nil:
		return hdr, fail(CodeTokenMalformed, `JWT header "alg" must be a string`)
	case !ok:
		return hdr, fail(CodeTokenMalformed, `JWT header "alg" is missing`)
	}
	hdr.alg = alg
	if hdr.typ, _, err = optString(h, hTyp); err != nil {
		return hdr, fail(CodeTokenMalformed, `JWT header "typ" must be a string`)
	}
	if hdr.kid, hdr.hasKid, err = optString(h, hKid); err != nil {
		return hdr, fail(CodeTokenMalformed, `JWT header "kid" must be a string`)
	}
	if hdr.hasKid && (hdr.kid == "" || len(hdr.kid) > maxKidLength) {
		return hdr, fail(CodeTokenMalformed, `JWT header "kid" must be a non-empty string of at most 256 bytes`)
	}
	return hdr, nil
}

// checkTyp applies J5 to the typ header. Only the typ values of access
// tokens pass: at+jwt (RFC 9068), and, unless the issuer requires at+jwt,
// JWT or no typ at all. Every other explicit type (dpop+jwt, secevent+jwt,
// logout+jwt, refresh token types, ...) names another kind of JWT.
// Comparison is case-insensitive and ignores an "application/" prefix
// (RFC 7515 §4.1.9).
func checkTyp(typ, required string) *Error {
	t := strings.ToLower(typ)
	t = strings.TrimPrefix(t, "application/")
	switch {
	case t == "at+jwt":
		return nil
	case required != "":
		return fail(CodeTypeInvalid, `token type must be "at+jwt"`)
	case t == "" || t == "jwt":
		return nil
	default:
		return fail(CodeTypeInvalid, "JWT type is not an access token type")
	}
}

// Claims that only other kinds of JWT carry (J5).
var (
	cEvents   = ast.StringTerm("events")    // SET (RFC 8417)
	cHtm      = ast.StringTerm("htm")       // DPoP proof (RFC 9449)
	cHtu      = ast.StringTerm("htu")       // DPoP proof
	cNonce    = ast.StringTerm("nonce")     // ID token (OIDC Core §2)
	cAtHash   = ast.StringTerm("at_hash")   // ID token
	cCHash    = ast.StringTerm("c_hash")    // ID token
	cTokenUse = ast.StringTerm("token_use") // "access" vs "id" / "refresh" in some servers
)

// checkPayloadKind refuses payloads that look like other kinds of JWT.
func checkPayloadKind(claims ast.Object) *Error {
	switch {
	case claims.Get(cEvents) != nil:
		return fail(CodeTypeInvalid, "a security event token is not an access token")
	case claims.Get(cHtm) != nil && claims.Get(cHtu) != nil:
		return fail(CodeTypeInvalid, "a DPoP proof is not an access token")
	case claims.Get(cNonce) != nil || claims.Get(cAtHash) != nil || claims.Get(cCHash) != nil:
		return fail(CodeTypeInvalid, "an ID token is not an access token")
	}
	if use, ok, _ := optString(claims, cTokenUse); ok && use != "access" {
		return fail(CodeTypeInvalid, `token_use is not "access"`)
	}
	return nil
}
