package ssf

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/keycheck"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// FuzzParseJWKS feeds JWKS documents to the transmitter key loader with
// jwx's RSA minimums at 0, as the linked OPA sets them in the pdp binary:
// it never panics, and every key it loads passes the key check.
func FuzzParseJWKS(f *testing.F) {
	jwk.Configure(jwk.WithMinRSAPublicExponent(0), jwk.WithMinRSAModulusBits(0))
	f.Cleanup(func() { jwk.Configure(jwk.WithMinRSAPublicExponent(3), jwk.WithMinRSAModulusBits(2048)) })
	roca := keychecktest.ROCA()
	for _, keys := range [][]any{
		{keychecktest.RSAJWK(roca.N, roca.E, "roca", "RS256")},
		{keychecktest.RSAJWK(roca.N, 1, "e1", "RS256")},
		{keychecktest.SmallOrderEd25519("small")},
		{map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ok"}},
	} {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		f.Add(b)
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseJWKS(data, log)
		if err != nil {
			return
		}
		for kid, k := range keys {
			if err := keycheck.Check(k.pub); err != nil {
				t.Fatalf("loaded key %q refused by the key check: %v", kid, err)
			}
		}
	})
}
