package token

import (
	"context"
	"errors"
	"slices"
)

// verifyJWT verifies a compact JWS access token. The order matters: all
// checks that need no key come first, so that a token that is refused
// anyway never causes a JWKS fetch, and no claim is believed before the
// signature is.
func (v *Verifier) verifyJWT(ctx context.Context, raw string, sum [32]byte) (*Token, *Error) {
	jwt, hdr, is, e := v.parseForIssuer(raw)
	if e != nil {
		return nil, e
	}
	// J5, header part.
	if e := checkTyp(hdr.typ, is.cfg.AccessTokenType); e != nil {
		return nil, e
	}

	if is.cfg.JWKSURI == "" && is.cfg.JWKSFile == "" {
		// The issuer publishes no keys but introspects: ask it.
		if v.introspector != nil && v.introspector.is == is {
			return v.introspect(ctx, raw, sum)
		}
		return nil, fail(CodeSignatureInvalid, "no keys configured for this issuer")
	}

	key, e := v.verifyWithIssuerKeys(ctx, is, hdr, raw, jwt.signature)
	if e != nil {
		return nil, e
	}

	// Claims, now that they are the issuer's word.
	if e := checkPayloadKind(jwt.payload); e != nil {
		return nil, e
	}
	tok := &Token{
		Hash:         hashString(sum),
		Source:       SourceJWT,
		Verification: verifications.Add(1),
		Issuer:       is.cfg.Issuer,
		Claims:       jwt.payload,
		Alg:          hdr.alg,
		Typ:          hdr.typ,
		Kid:          hdr.kid,
	}
	if e := readClaims(tok, jwt.payload, is.cfg.Audiences, jwtRules); e != nil {
		return nil, e
	}
	now := v.now()
	if e := checkTimes(tok, now, v.skew); e != nil {
		return nil, e
	}
	v.cache.put(sum, &cacheEntry{
		tok:        tok,
		until:      tok.ExpiresAt.Add(v.skew),
		iss:        is,
		thumbprint: key.thumbprint,
	}, now)
	return tok, nil
}

// parseForIssuer applies the checks every JWT passes before its key is
// looked up: shape (J10), header (J4), the issuer named by the still
// unverified iss, exactly (J7), and that issuer's algorithm allow-list,
// exact and case-sensitive, which "none" and HS* can never be on (J1).
func (v *Verifier) parseForIssuer(raw string) (*compactJWS, joseHeader, *issuer, *Error) {
	jwt, e := parseCompact(raw)
	if e != nil {
		return nil, joseHeader{}, nil, e
	}
	hdr, e := readHeader(jwt.header)
	if e != nil {
		return nil, joseHeader{}, nil, e
	}
	issName, ok, err := optString(jwt.payload, cIss)
	switch {
	case err != nil:
		return nil, joseHeader{}, nil, fail(CodeTokenMalformed, `claim "iss" must be a string`)
	case !ok:
		return nil, joseHeader{}, nil, fail(CodeClaimsMissing, `claim "iss" is missing`)
	}
	is := v.byName[issName]
	if is == nil {
		return nil, joseHeader{}, nil, fail(CodeIssuerUntrusted, "token issuer is not trusted")
	}
	if !slices.Contains(is.cfg.Algorithms, hdr.alg) {
		return nil, joseHeader{}, nil, fail(CodeAlgNotAllowed, "token algorithm is not allowed for this issuer")
	}
	return jwt, hdr, is, nil
}

// verifyWithIssuerKeys finds the keys of is that may have signed the token
// and checks the signature (J1, J2, J9). Keys come only from the issuer's
// own set, never from the header (J3). An unknown kid, or no key for the
// algorithm, causes one rate-limited refresh of a jwks_uri issuer; never a
// fallback to another key.
func (v *Verifier) verifyWithIssuerKeys(ctx context.Context, is *issuer, hdr joseHeader, raw string, sig []byte) (*verifyKey, *Error) {
	find := func(ks *keySet) (named, fitting []*verifyKey) {
		if hdr.hasKid {
			return ks.lookup(hdr.kid, hdr.alg)
		}
		fitting = ks.fitting(hdr.alg)
		return fitting, fitting
	}
	named, fitting := find(is.keys.Load())
	if len(named) == 0 && is.cfg.JWKSURI != "" {
		if err := v.refresh(ctx, is, true); err != nil && !errors.Is(err, errRefreshLimited) {
			v.log.Debug("JWKS refresh for an unknown key failed", "issuer", is.cfg.Issuer, "error", err)
		}
		named, fitting = find(is.keys.Load())
	}
	switch {
	case len(named) == 0 && hdr.hasKid:
		return nil, fail(CodeSignatureInvalid, "no key of the issuer has this key id")
	case len(named) == 0:
		return nil, fail(CodeSignatureInvalid, "no key of the issuer fits the token algorithm")
	case len(fitting) == 0:
		// The kid names a key of another type or curve, or with another
		// alg: the token cannot have been signed with it.
		return nil, fail(CodeSignatureInvalid, "the key with this key id does not fit the token algorithm")
	}
	var lastErr error
	for _, k := range fitting {
		err := verifySignature(k, hdr.alg, raw, sig)
		if err == nil {
			return k, nil
		}
		lastErr = err
	}
	return nil, failWrap(CodeSignatureInvalid, "token signature is invalid", lastErr)
}
