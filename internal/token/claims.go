package token

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jose"
)

var (
	cIss      = ast.StringTerm("iss")
	cSub      = ast.StringTerm("sub")
	cAud      = ast.StringTerm("aud")
	cExp      = ast.StringTerm("exp")
	cNbf      = ast.StringTerm("nbf")
	cIat      = ast.StringTerm("iat")
	cJti      = ast.StringTerm("jti")
	cClientID = ast.StringTerm("client_id")
	cScope    = ast.StringTerm("scope")
	cScp      = ast.StringTerm("scp")
	cCnf      = ast.StringTerm("cnf")
	cJkt      = ast.StringTerm("jkt")
	cX5tS256  = ast.StringTerm("x5t#S256")
)

// errClaimType reports a claim or header member of the wrong JSON type.
var errClaimType = errors.New("wrong JSON type")

// optString returns the string member name of obj, whether it is present,
// and errClaimType when it is present but not a string.
func optString(obj ast.Object, name *ast.Term) (string, bool, error) {
	t := obj.Get(name)
	if t == nil {
		return "", false, nil
	}
	s, ok := t.Value.(ast.String)
	if !ok {
		return "", true, errClaimType
	}
	return string(s), true, nil
}

// optNumericDate returns the NumericDate (RFC 7519 §2) member name of obj:
// errClaimType when it is no number, jose.ErrNumericDate when it is one
// outside what the decision point can hold (before 1970, after 2262).
func optNumericDate(obj ast.Object, name *ast.Term) (time.Time, bool, error) {
	t := obj.Get(name)
	if t == nil {
		return time.Time{}, false, nil
	}
	if _, ok := t.Value.(ast.Number); !ok {
		return time.Time{}, true, errClaimType
	}
	d, err := jose.NumericDate(t.Value)
	return d, true, err
}

// claimRules says how strictly claims are read: JWT claims are the token's
// own word, an introspection response is the issuer's.
type claimRules struct {
	// requireTimes makes exp and iat mandatory (J6).
	requireTimes bool
	// requireAudience makes aud mandatory (J8).
	requireAudience bool
	// skipAudience does not check aud at all: a refresh token's audience is
	// the authorization server, not a resource.
	skipAudience bool
	// badType is the code for a member of the wrong type.
	badType string
}

var (
	jwtRules           = claimRules{requireTimes: true, requireAudience: true, badType: CodeTokenMalformed}
	introspectionRules = claimRules{badType: CodeIntrospectionFailed}
	refreshJWTRules    = claimRules{skipAudience: true, badType: CodeTokenMalformed}
	refreshIntroRules  = claimRules{skipAudience: true, badType: CodeIntrospectionFailed}
)

// readClaims fills tok from claims and checks the audience against the
// issuer's. Times are read but checked by checkTimes.
func readClaims(tok *Token, claims ast.Object, audiences []string, rules claimRules) *Error {
	bad := func(name string) *Error {
		return fail(rules.badType, fmt.Sprintf("claim %q has the wrong type", name))
	}
	badDate := func(name string, err error) *Error {
		if errors.Is(err, jose.ErrNumericDate) {
			return fail(rules.badType, fmt.Sprintf("claim %q is %v", name, err))
		}
		return bad(name)
	}
	var (
		ok  bool
		err error
	)
	if tok.ExpiresAt, ok, err = optNumericDate(claims, cExp); err != nil {
		return badDate("exp", err)
	} else if !ok && rules.requireTimes {
		return fail(CodeClaimsMissing, `claim "exp" is missing`)
	}
	if tok.IssuedAt, ok, err = optNumericDate(claims, cIat); err != nil {
		return badDate("iat", err)
	} else if !ok && rules.requireTimes {
		return fail(CodeClaimsMissing, `claim "iat" is missing`)
	}
	if tok.NotBefore, _, err = optNumericDate(claims, cNbf); err != nil {
		return badDate("nbf", err)
	}
	if tok.Subject, _, err = optString(claims, cSub); err != nil {
		return bad("sub")
	}
	if tok.ClientID, _, err = optString(claims, cClientID); err != nil {
		return bad("client_id")
	}
	if tok.JTI, _, err = optString(claims, cJti); err != nil {
		return bad("jti")
	}
	if tok.Scopes, err = readScopes(claims); err != nil {
		return bad("scope")
	}
	if tok.Confirmation, err = readConfirmation(claims); err != nil {
		return bad("cnf")
	}
	if rules.skipAudience {
		return nil
	}
	return checkAudience(claims, audiences, rules)
}

// checkAudience applies J8: aud is a string or an array of strings and
// holds at least one of the issuer's audiences. An empty array is no
// wildcard.
func checkAudience(claims ast.Object, audiences []string, rules claimRules) *Error {
	t := claims.Get(cAud)
	if t == nil {
		if rules.requireAudience {
			return fail(CodeAudienceMismatch, "token has no audience")
		}
		return nil
	}
	switch aud := t.Value.(type) {
	case ast.String:
		if slices.Contains(audiences, string(aud)) {
			return nil
		}
	case *ast.Array:
		found := false
		for i := range aud.Len() {
			s, ok := aud.Elem(i).Value.(ast.String)
			if !ok {
				return fail(rules.badType, `claim "aud" must be a string or an array of strings`)
			}
			found = found || slices.Contains(audiences, string(s))
		}
		if found {
			return nil
		}
	default:
		return fail(rules.badType, `claim "aud" must be a string or an array of strings`)
	}
	return fail(CodeAudienceMismatch, "token is not meant for this resource")
}

// readScopes reads "scope" (RFC 8693 §4.2 / RFC 9068: one space-separated
// string) or, only when it is absent, "scp" (an array of strings, or a
// space-separated string as some servers issue it).
func readScopes(claims ast.Object) ([]string, error) {
	if t := claims.Get(cScope); t != nil {
		s, ok := t.Value.(ast.String)
		if !ok {
			return nil, errClaimType
		}
		return splitScope(string(s)), nil
	}
	t := claims.Get(cScp)
	if t == nil {
		return nil, nil
	}
	switch v := t.Value.(type) {
	case ast.String:
		return splitScope(string(v)), nil
	case *ast.Array:
		scopes := make([]string, 0, v.Len())
		for i := range v.Len() {
			s, ok := v.Elem(i).Value.(ast.String)
			if !ok {
				return nil, errClaimType
			}
			scopes = append(scopes, string(s))
		}
		return scopes, nil
	default:
		return nil, errClaimType
	}
}

// splitScope splits on the single spaces of RFC 6749 §3.3, dropping empty
// tokens.
func splitScope(s string) []string {
	var scopes []string
	for f := range strings.SplitSeq(s, " ") {
		if f != "" {
			scopes = append(scopes, f)
		}
	}
	return scopes
}

// readConfirmation reads cnf.jkt and cnf["x5t#S256"].
func readConfirmation(claims ast.Object) (Confirmation, error) {
	var c Confirmation
	t := claims.Get(cCnf)
	if t == nil {
		return c, nil
	}
	cnf, ok := t.Value.(ast.Object)
	if !ok {
		return c, errClaimType
	}
	var err error
	if c.JKT, _, err = optString(cnf, cJkt); err != nil {
		return c, err
	}
	if c.X5TS256, _, err = optString(cnf, cX5tS256); err != nil {
		return c, err
	}
	return c, nil
}

// checkTimes applies J6 at now with the given skew: exp must lie ahead
// (exp > now−skew), nbf and iat must not lie ahead (≤ now+skew).
func checkTimes(tok *Token, now time.Time, skew time.Duration) *Error {
	if !tok.ExpiresAt.IsZero() && !tok.ExpiresAt.After(now.Add(-skew)) {
		return fail(CodeExpired, "token expired "+tok.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !tok.NotBefore.IsZero() && tok.NotBefore.After(now.Add(skew)) {
		return fail(CodeNotYetValid, "token not valid before "+tok.NotBefore.UTC().Format(time.RFC3339))
	}
	if !tok.IssuedAt.IsZero() && tok.IssuedAt.After(now.Add(skew)) {
		return fail(CodeNotYetValid, "token issued in the future")
	}
	return nil
}

// Recheck applies the time checks of Verify to a token this verifier
// verified earlier and a transport kept (its hash and claims, never the
// token): exp, nbf and iat at the verifier's now, with its clock skew.
func (v *Verifier) Recheck(tok *Token) *Error {
	return checkTimes(tok, v.now(), v.skew)
}
