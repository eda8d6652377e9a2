// Package ssf receives Shared Signals (SSF 1.0) security event tokens,
// pushed to the PDP (RFC 8935) or polled from a transmitter (RFC 8936),
// and turns each CAEP or RISC event into a revocation in the store, so that
// the very next decision denies the tokens the event concerns.
//
// A SET (RFC 8417) is accepted only when it is a compact JWS signed with an
// asymmetric algorithm by a key of the transmitter named in its "iss",
// found by "kid" in that transmitter's configured JWKS, with "typ"
// secevent+jwt, an "aud" that contains the transmitter's configured
// audience, "iat" and "jti", no "sub" and no "exp", and exactly one event.
// Refusals carry the RFC 8935 error codes.
//
// Subjects (RFC 9493 and SSF complex subjects) map to store revocations:
//
//   - iss_sub names the token issuer itself: the revocation is scoped to
//     sub_id.iss, which must be one of the transmitter's token issuers.
//   - email and opaque name no issuer: the revocation is written once for
//     each of the transmitter's token issuers, with the email address or
//     the opaque id as the revoked value. It therefore only matches tokens
//     whose "sub" (or "sid", for a session) is exactly that string.
//   - complex subjects are read through their "user" and "session"
//     members; the narrowing members (tenant, device, application, ...)
//     are ignored, which makes the revocation broader, never narrower.
//
// Events and subject formats this package does not act on are accepted
// (RFC 8935 lets a receiver ignore events it does not understand), logged
// and counted, but change nothing.
//
// The SET itself is never logged; log lines carry a hash of its jti, the
// event type and the subject format.
package ssf
