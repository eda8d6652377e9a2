// Package dpop verifies DPoP proofs (RFC 9449): the JWTs a client sends in
// the DPoP header to show that it holds the private key an access token is
// bound to.
//
// Verify applies the D1–D9 and D12 rules of the security checklist in order:
// shape and size, the protected header (typ, an allow-listed asymmetric alg,
// a public jwk that fits it), the signature under that jwk and nothing else,
// the claims (jti, htm, htu, iat, ath), optional server nonces, and last, for
// a proof that passed everything else, the single-use check of its jti in
// the replay store. Header and payload are parsed strictly: duplicate
// members, non-canonical base64url and non-canonical key encodings are
// refused, so that the proof means one thing to every parser.
//
// The package decides nothing about tokens: the caller compares Proof.JKT
// with the token's cnf.jkt (D10) and refuses bearer downgrades (D11). Nonces
// implements stateless server nonces that every replica sharing the secret
// accepts.
//
// Errors are *Error with a stable Code and a Message safe to show; neither
// ever contains the proof or the access token. A replay-store failure is
// returned as a plain error.
package dpop
