package dpop_test

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/dpop"
)

func TestThumbprint(t *testing.T) {
	cases := []struct {
		name, jwk, want string
	}{
		{
			name: "ok/RFC 7638 section 3.1 RSA key",
			jwk:  `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`,
			want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		},
		{
			name: "ok/RFC 8037 A.3 Ed25519 key",
			jwk:  `{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
		},
		{
			name: "ok/RFC 8037 A.1 Ed25519 private key has the public key's thumbprint",
			jwk:  `{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`,
			want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := jwk.ParseKey([]byte(tc.jwk))
			if err != nil {
				t.Fatal(err)
			}
			got, err := dpop.Thumbprint(k)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Thumbprint = %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("fail/nil key", func(t *testing.T) {
		if _, err := dpop.Thumbprint(nil); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestThumbprintPublicAndPrivate checks, for every key type, that the
// private key, the public key and Verify's own thumbprint of the proof jwk
// agree.
func TestThumbprintPublicAndPrivate(t *testing.T) {
	v := newVerifier(t, newMemReplay(), dpop.Options{})
	for _, alg := range testAlgs {
		t.Run("ok/"+alg, func(t *testing.T) {
			p := prover(t, alg)
			priv, err := jwk.Import(p.Key())
			if err != nil {
				t.Fatal(err)
			}
			pub, err := jwk.Import(p.Key().Public())
			if err != nil {
				t.Fatal(err)
			}
			tpPriv, err := dpop.Thumbprint(priv)
			if err != nil {
				t.Fatal(err)
			}
			tpPub, err := dpop.Thumbprint(pub)
			if err != nil {
				t.Fatal(err)
			}
			proof, err := v.Verify(context.Background(), request(t, mustProof(t, p, "GET", testURL, testToken)))
			if err != nil {
				t.Fatal(err)
			}
			if tpPriv != tpPub || tpPub != proof.JKT || len(tpPub) != 43 {
				t.Fatalf("private %s, public %s, proof %s", tpPriv, tpPub, proof.JKT)
			}
		})
	}
}

// TestVerifyRFC8037KeyThumbprint checks the thumbprint Verify computes
// from a proof's jwk members against the RFC 8037 vector, by verifying a
// proof signed with the RFC 8037 A.1 key.
func TestVerifyRFC8037KeyThumbprint(t *testing.T) {
	k, err := jwk.ParseKey([]byte(`{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	if err != nil {
		t.Fatal(err)
	}
	p := proverFromJWK(t, "EdDSA", k)
	v := newVerifier(t, newMemReplay(), dpop.Options{})
	got, err := v.Verify(context.Background(), request(t, mustProof(t, p, "GET", testURL, testToken)))
	if err != nil {
		t.Fatal(err)
	}
	if got.JKT != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("JKT = %s", got.JKT)
	}
}
