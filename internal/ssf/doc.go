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
// Its "iat" must be at most Options.MaxAge old and at most Options.Skew
// ahead. Refusals carry the RFC 8935 error codes.
//
// An applied SET is remembered in the store (by a hash of its issuer and
// jti) until no delivery of it can be accepted any more, so that a replay
// is answered as a duplicate and applied no more, after a restart and on
// every replica of a shared store alike.
//
// Every event below revokes the tokens issued before a cut-off: the event's
// event_timestamp when present and not in the future, else the SET's iat
// (never later than now). The revocation's reason is "ssf:<event name>",
// and it lasts Options.RevocationTTL (30 days by default).
//
//	CAEP session-revoked            session cut-off when the subject names a
//	                                session, else subject cut-off
//	CAEP credential-change          subject cut-off
//	CAEP token-claims-change        subject cut-off
//	CAEP assurance-level-change     subject cut-off
//	CAEP device-compliance-change   subject cut-off when current_status is
//	                                not-compliant; ignored when compliant
//	RISC account-disabled, account-purged, credential-compromise,
//	     account-credential-change-required, identifier-changed,
//	     identifier-recycled        subject cut-off
//
// A complex subject that names only a session gets a session cut-off for
// every event.
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
