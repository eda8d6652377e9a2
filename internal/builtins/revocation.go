package builtins

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/store"
)

// revocationDecl declares pdp.revocation. It is memoized, so that a policy
// sees one answer per token within an evaluation however often it asks.
var revocationDecl = &rego.Function{
	Name: RevocationName,
	Description: "Reports whether a token is revoked: by its jti, or by a cut-off on its session (sid), " +
		"subject (sub) or client (client_id). Returns {\"revoked\": false}, or {\"revoked\": true, " +
		"\"kind\": \"jti|session|subject|client\", \"id\": revocation id, \"at\": cut-off (for jti: " +
		"revocation time) in ns since the epoch, \"reason\": text}.",
	Decl: types.NewFunction(
		types.Args(
			types.Named("token", types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))).
				Description("token claims: iss (required), and any of sub, jti, sid, client_id (strings), iat (seconds)"),
		),
		types.Named("result", types.NewObject(
			[]*types.StaticProperty{types.NewStaticProperty("revoked", types.B)},
			types.NewDynamicProperty(types.S, types.A),
		)).Description("the first revocation that applies, checked in the order jti, session, subject, client"),
	),
	Memoize:          true,
	Nondeterministic: true,
}

func revocation(bctx rego.BuiltinContext, tok *ast.Term) (*ast.Term, error) {
	ref, err := tokenRef(tok)
	if err != nil {
		return nil, err
	}
	s, err := reader()
	if err != nil {
		return nil, err
	}
	ctx := bctxContext(bctx)
	d := tracked(ctx)
	var c *revocationCall
	var st *stamp
	if d != nil {
		c = &revocationCall{ref: ref}
		st = versionOf(c, s) // before the look-up
	}
	r, ok, err := s.CheckRevocation(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("revocation lookup: %w", err)
	}
	if d != nil {
		c.rev = answerOf(r, ok)
		if st != nil && ok {
			st.until = r.ExpiresAt.UnixNano()
		}
		d.add(c, st)
	}
	if !ok {
		return ast.ObjectTerm(ast.Item(ast.InternedTerm("revoked"), ast.InternedTerm(false))), nil
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("revoked"), ast.InternedTerm(true)),
		ast.Item(ast.InternedTerm("kind"), ast.StringTerm(string(r.Kind))),
		ast.Item(ast.InternedTerm("id"), ast.StringTerm(r.ID)),
		ast.Item(ast.InternedTerm("at"), nanosTerm(r.NotBefore)),
		ast.Item(ast.InternedTerm("reason"), ast.StringTerm(r.Reason)),
	), nil
}

// tokenRef reads the claims pdp.revocation needs. Other keys are ignored, so
// that a policy can pass the token's whole claims object.
func tokenRef(t *ast.Term) (store.TokenRef, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return store.TokenRef{}, fmt.Errorf("token must be an object, got %s", ast.ValueName(t.Value))
	}
	var ref store.TokenRef
	var err error
	for _, f := range []struct {
		claim string
		dst   *string
	}{
		{"iss", &ref.Issuer}, {"sub", &ref.Subject}, {"jti", &ref.JTI}, {"sid", &ref.SessionID}, {"client_id", &ref.ClientID},
	} {
		if *f.dst, err = stringClaim(obj, f.claim); err != nil {
			return store.TokenRef{}, err
		}
	}
	if ref.Issuer == "" {
		return store.TokenRef{}, fmt.Errorf("token.iss must be a non-empty string")
	}
	if ref.IssuedAt, err = iatClaim(obj); err != nil {
		return store.TokenRef{}, err
	}
	return ref, nil
}

// stringClaim returns a string claim; "" when it is absent or null.
func stringClaim(obj ast.Object, claim string) (string, error) {
	v := obj.Get(ast.InternedTerm(claim))
	if v == nil {
		return "", nil
	}
	switch x := v.Value.(type) {
	case ast.String:
		return string(x), nil
	case ast.Null:
		return "", nil
	default:
		return "", fmt.Errorf("token.%s must be a string, got %s", claim, ast.ValueName(v.Value))
	}
}

// iatClaim returns iat (jose.NumericDate: what a verified token may carry);
// the zero time when it is absent or null, which every cut-off treats as
// issued before it.
func iatClaim(obj ast.Object) (time.Time, error) {
	v := obj.Get(ast.InternedTerm("iat"))
	if v == nil {
		return time.Time{}, nil
	}
	if _, ok := v.Value.(ast.Null); ok {
		return time.Time{}, nil
	}
	if _, ok := v.Value.(ast.Number); !ok {
		return time.Time{}, fmt.Errorf("token.iat must be a number of seconds, got %s", ast.ValueName(v.Value))
	}
	t, err := jose.NumericDate(v.Value)
	if err != nil {
		return time.Time{}, fmt.Errorf("token.iat %s is out of range", v)
	}
	return t, nil
}

// nanosTerm is t as a number of nanoseconds since the epoch, the unit of
// Rego's time functions.
func nanosTerm(t time.Time) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatInt(t.UnixNano(), 10)))
}
