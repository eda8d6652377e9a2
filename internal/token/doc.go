// Package token verifies OAuth 2.0 access tokens before any policy runs.
//
// A JWT access token (RFC 9068) is checked in Go against the shape limits,
// the per-issuer algorithm allow-list and key set, its signature and its
// registered claims (RFC 8725 / RFC 7519, the J1–J10 rules of the security
// checklist). An opaque token is sent to the one issuer that introspects
// (RFC 7662). Either way the caller gets a Token with the verified claims as
// an ast.Object ready for Rego, or an *Error with a stable reason code.
//
// Tokens are only ever identified by HashToken (base64url SHA-256): the raw
// token never appears in an error, a log line or a cache key.
package token
