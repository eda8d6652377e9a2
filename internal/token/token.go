package token

import (
	"crypto/sha256"
	"encoding/base64"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Sources of a Token.
const (
	SourceJWT           = "jwt"
	SourceIntrospection = "introspection"
)

// Token is a verified access token.
//
// Claims and Scopes are shared with the verification cache: callers must
// never mutate them. Each Verify call returns its own copy of the struct.
type Token struct {
	// Hash is HashToken(raw): the only form in which a token may be logged
	// or stored.
	Hash string
	// Source is SourceJWT or SourceIntrospection.
	Source string
	// Issuer is the configured issuer that vouched for the token.
	Issuer string
	// Claims are the verified claims: the JWT payload, or the introspection
	// response.
	Claims ast.Object
	// Alg, Typ and Kid are the JWT header values ("" for introspection).
	Alg, Typ, Kid string
	// IssuedAt, ExpiresAt and NotBefore are zero when absent.
	IssuedAt, ExpiresAt, NotBefore time.Time
	// Subject, ClientID and JTI are the sub, client_id and jti claims.
	Subject, ClientID, JTI string
	// Scopes come from "scope" (space-separated) or, without it, "scp"
	// (an array of strings or a space-separated string).
	Scopes []string
	// Confirmation is the sender constraint from "cnf".
	Confirmation Confirmation
	// Verification identifies the verification (signature check or
	// introspection) that produced the token: the same while the token
	// stays in the verifier's cache, a new one when it is verified again.
	// Never 0 for a token the Verifier returned.
	Verification uint64
	// FreshUntil is, for a token verified by introspection, when that
	// answer stops being trusted (the issuer's introspection cache_ttl,
	// never past exp): a transport that keeps the token must not decide
	// with it after. Zero for a JWT.
	FreshUntil time.Time
}

// verifications numbers Token.Verification.
var verifications atomic.Uint64

// Confirmation is the "cnf" claim (RFC 7800) as far as the PDP uses it.
type Confirmation struct {
	// JKT is cnf.jkt, the RFC 7638 thumbprint of a DPoP key (RFC 9449).
	JKT string
	// X5TS256 is cnf["x5t#S256"], the certificate thumbprint of an mTLS
	// bound token (RFC 8705).
	X5TS256 string
}

// HashToken returns base64url(SHA-256(raw)) without padding.
func HashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
