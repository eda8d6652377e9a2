package token

import (
	"encoding/json"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/keycheck"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// looseJWX sets jwx's process-wide RSA minimums to 0, as the linked OPA
// does in the pdp binary, until the test ends.
func looseJWX(tb testing.TB) {
	jwk.Configure(jwk.WithMinRSAPublicExponent(0), jwk.WithMinRSAModulusBits(0))
	tb.Cleanup(func() { jwk.Configure(jwk.WithMinRSAPublicExponent(3), jwk.WithMinRSAModulusBits(2048)) })
}

// FuzzParseKeySet feeds JWKS documents to the issuer key loader with jwx
// as loose as in the pdp binary: it never panics, and every key it loads
// passes the key check.
func FuzzParseKeySet(f *testing.F) {
	looseJWX(f)
	roca := keychecktest.ROCA()
	for _, keys := range [][]any{
		{keychecktest.RSAJWK(roca.N, roca.E, "roca", "RS256")},
		{keychecktest.RSAJWK(roca.N, 1, "e1", "RS256")},
		{keychecktest.SmallOrderEd25519("small")},
		{map[string]any{"kty": "EC", "crv": "P-256", "kid": "off",
			"x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1"}},
		{map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ok"}},
	} {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQ","e":"AQ"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ks, _, err := parseKeySet(data)
		if err != nil {
			return
		}
		for _, k := range ks.keys {
			if err := keycheck.Check(k.pub); err != nil {
				t.Fatalf("loaded key %q refused by the key check: %v", k.kid, err)
			}
		}
	})
}
