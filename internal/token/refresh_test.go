package token

import (
	"context"
	"testing"

	"github.com/tokenguard/pdp/internal/devissuer"
)

func TestVerifyRefresh(t *testing.T) {
	f := newFixture(t)
	refreshTyp := devissuer.WithHeader("typ", "refresh+jwt")
	asAud := map[string]any{"aud": "https://as.example/token", "sid": "s-1"}
	tests := []struct {
		name string
		tok  string
		code string
	}{
		{"ok/refresh+jwt typ, audience of the AS", mint(t, f.a, asAud, refreshTyp), ""},
		{"ok/no typ", mint(t, f.a, asAud, devissuer.WithHeader("typ", nil)), ""},
		{"ok/token_use refresh", mint(t, f.a, map[string]any{"token_use": "refresh"}, refreshTyp), ""},
		{"fail/an access token is not a refresh token", mint(t, f.a, nil), CodeTypeInvalid},
		{"fail/token_use access", mint(t, f.a, map[string]any{"token_use": "access"}, refreshTyp), CodeTypeInvalid},
		{"fail/an ID token", mint(t, f.a, map[string]any{"nonce": "n"}, devissuer.WithHeader("typ", "JWT")), CodeTypeInvalid},
		{"fail/untrusted issuer", mint(t, newIssuer(t, "https://evil.example", "ES256"), asAud, refreshTyp), CodeIssuerUntrusted},
		{"fail/signed by another key", func() string {
			other := newIssuer(t, issA, "ES256")
			return mint(t, other, asAud, refreshTyp, devissuer.WithHeader("kid", f.a.KID()))
		}(), CodeSignatureInvalid},
		{"fail/alg none", unsigned(`{"alg":"none","typ":"refresh+jwt"}`, jsonString(t, claims(issA, asAud)), nil), CodeAlgNotAllowed},
		{"fail/expired", mint(t, f.a, map[string]any{"exp": testNow.Add(-10 * 60e9).Unix()}, refreshTyp), CodeExpired},
		{"fail/malformed", "a.b", CodeTokenMalformed},
		{"fail/opaque without an introspecting issuer", "opaque-refresh-token", CodeTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.v.VerifyRefresh(context.Background(), tt.tok)
			wantCode(t, tt.tok, got, err, tt.code)
			if tt.code == "" && (got.Issuer != issA || got.Subject != "user-1") {
				t.Errorf("token = %+v", got)
			}
		})
	}
}
