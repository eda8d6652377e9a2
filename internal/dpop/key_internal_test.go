package dpop

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jsonast"
)

// TestParseJWKThumbprintVectors checks the thumbprint Verify computes from
// a proof's jwk members (not jwx's) against the RFC 7638 and RFC 8037
// vectors.
func TestParseJWKThumbprintVectors(t *testing.T) {
	cases := []struct {
		name, alg, jwk, want string
	}{
		{
			name: "ok/RFC 7638 section 3.1 RSA key",
			alg:  "RS256",
			jwk:  `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`,
			want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		},
		{
			name: "ok/RFC 8037 A.3 Ed25519 key",
			alg:  "EdDSA",
			jwk:  `{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jsonast.Parse([]byte(tc.jwk), 2)
			if err != nil {
				t.Fatal(err)
			}
			k, e := parseJWK(ast.NewTerm(v), tc.alg)
			if e != nil {
				t.Fatal(e)
			}
			if k.jkt != tc.want {
				t.Fatalf("jkt = %s, want %s", k.jkt, tc.want)
			}
		})
	}
}
