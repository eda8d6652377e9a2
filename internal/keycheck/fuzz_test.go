package keycheck_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/keycheck"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// The decision point links OPA, which lets jwx import any RSA modulus and
// exponent; the fuzz target runs under the same settings, so that only
// Check stands between a JWK and a verification key.
func init() {
	jwk.Configure(jwk.WithMinRSAPublicExponent(0), jwk.WithMinRSAModulusBits(0))
}

// FuzzKeyCheck feeds JWKs through jwx's import and Check: nothing panics,
// and every key Check accepts meets the rules it states.
func FuzzKeyCheck(f *testing.F) {
	roca, err := json.Marshal(keychecktest.RSAJWK(keychecktest.ROCA().N, 65537, keychecktest.ROCAKID, "RS256"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"kty":"RSA","n":"AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPrId7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE","e":"AQAB"}`,
		`{"kty":"RSA","n":"AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPrId7fe4r11CqRw09yBFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64vAbROBR4Ubg6Bxg9IQVZ-QYyE","e":"AQ"}`,
		`{"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}`,
		`{"kty":"RSA","n":"AQ","e":"AQAB"}`,
		`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
		`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1"}`,
		`{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_AU"}`,
		`{"kty":"OKP","crv":"Ed25519","x":"7f___________________________________________38"}`,
		`{"kty":"oct","k":"c2VjcmV0"}`,
		string(roca),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		key, err := jwk.ParseKey(data)
		if err != nil {
			return
		}
		var raw any
		if err := jwk.Export(key, &raw); err != nil {
			return
		}
		if keycheck.Check(raw) != nil {
			return
		}
		switch k := raw.(type) {
		case *rsa.PublicKey:
			if b := k.N.BitLen(); b < keycheck.MinRSABits || b > keycheck.MaxRSABits || k.E < 3 || k.E%2 == 0 || keycheck.HasROCAFingerprint(k.N) {
				t.Fatalf("accepted a weak RSA key: %d bits, e %d", b, k.E)
			}
		case *ecdsa.PublicKey:
			if !k.Curve.IsOnCurve(k.X, k.Y) { //nolint:staticcheck // the reference check
				t.Fatal("accepted an EC point off its curve")
			}
		case ed25519.PublicKey:
			if len(k) != ed25519.PublicKeySize {
				t.Fatal("accepted an Ed25519 key of the wrong size")
			}
		default:
			t.Fatalf("accepted a %T", raw)
		}
	})
}
