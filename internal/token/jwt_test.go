package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/devissuer"
)

func TestVerifyJWT(t *testing.T) {
	f := newFixture(t)
	jku, jkuHits := counter(t)
	attackerEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attackerP384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	now := testNow.Unix()

	// payloadA is a valid claim set of issuer A, as JSON.
	payloadA := jsonString(t, claims(issA, nil))
	headerA := func(alg string) string {
		return `{"alg":"` + alg + `","typ":"at+jwt","kid":"` + f.a.KID() + `"}`
	}
	signingInput := func(header, payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(header)) + "." + enc([]byte(payload))
	}
	withSig := func(header, payload string, sig []byte) string {
		return signingInput(header, payload) + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	p256Order := elliptic.P256().Params().N.FillBytes(make([]byte, 32))

	tests := []struct {
		name  string
		token func(t *testing.T) string
		code  string // "" for success
	}{
		// Positive cases, one per key type and algorithm.
		{"ok/ES256 key from jwks_uri", func(t *testing.T) string { return mint(t, f.a, nil) }, ""},
		{"ok/RS256 key from jwks_file", func(t *testing.T) string { return mint(t, f.rsa, nil) }, ""},
		{"ok/PS256 key", func(t *testing.T) string { return mint(t, f.ps, nil) }, ""},
		{"ok/EdDSA Ed25519 key", func(t *testing.T) string { return mint(t, f.ed, nil) }, ""},
		{"ok/ES384 P-384 key", func(t *testing.T) string { return mint(t, f.p384, nil) }, ""},
		{"ok/ES512 P-521 key", func(t *testing.T) string { return mint(t, f.p521, nil) }, ""},
		{"ok/no kid tries the keys that fit the alg", func(t *testing.T) string {
			return mint(t, f.ps, nil, devissuer.WithHeader("kid", nil))
		}, ""},
		{"ok/typ application/at+jwt in capitals", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("typ", "Application/AT+JWT"))
		}, ""},
		{"ok/typ JWT where at+jwt is not required", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", "JWT"))
		}, ""},
		{"ok/no typ where at+jwt is not required", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", nil))
		}, ""},
		{"ok/aud array with one configured audience", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"aud": []string{"https://elsewhere.example", apiAud}})
		}, ""},
		{"ok/exp just past but within skew", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"exp": now - 10})
		}, ""},
		{"ok/nbf and iat slightly ahead within skew", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"nbf": now + 20, "iat": now + 20})
		}, ""},
		{"ok/fractional NumericDates", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"),
				`{"iss":"`+issA+`","aud":"`+apiAud+`","iat":`+big.NewInt(now-60).String()+`.5,"exp":`+big.NewInt(now+60).String()+`.25e0}`)
		}, ""},
		{"ok/jku header is ignored, the configured key verifies", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("jku", jku.URL+"/jwks"), devissuer.WithHeader("x5u", jku.URL+"/cert"))
		}, ""},

		// J1: algorithm allow-list and key/algorithm fit.
		{"fail/alg none lowercase", func(t *testing.T) string {
			return unsigned(`{"alg":"none","typ":"at+jwt"}`, payloadA, nil)
		}, CodeAlgNotAllowed},
		{"fail/alg None", func(t *testing.T) string {
			return unsigned(`{"alg":"None","typ":"at+jwt"}`, payloadA, nil)
		}, CodeAlgNotAllowed},
		{"fail/alg nOnE", func(t *testing.T) string {
			return unsigned(`{"alg":"nOnE","typ":"at+jwt"}`, payloadA, nil)
		}, CodeAlgNotAllowed},
		{"fail/alg none on a signed token", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("alg", "none"))
		}, CodeAlgNotAllowed},
		{"fail/alg es256 in lower case", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("alg", "es256"))
		}, CodeAlgNotAllowed},
		{"fail/HS256 signed with the RSA public key PEM as secret", func(t *testing.T) string {
			der, _ := x509.MarshalPKIXPublicKey(f.rsa.PrivateKey().Public())
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			h := `{"alg":"HS256","typ":"at+jwt","kid":"` + f.rsa.KID() + `"}`
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(signingInput(h, jsonString(t, claims(issRSA, nil)))))
			return withSig(h, jsonString(t, claims(issRSA, nil)), mac.Sum(nil))
		}, CodeAlgNotAllowed},
		{"fail/HS256 signed with the JWKS bytes as secret", func(t *testing.T) string {
			h := `{"alg":"HS256","kid":"` + f.rsa.KID() + `"}`
			mac := hmac.New(sha256.New, f.rsa.JWKS())
			mac.Write([]byte(signingInput(h, jsonString(t, claims(issRSA, nil)))))
			return withSig(h, jsonString(t, claims(issRSA, nil)), mac.Sum(nil))
		}, CodeAlgNotAllowed},
		{"fail/RS384 not on the issuer allow-list", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithAlg("RS384"))
		}, CodeAlgNotAllowed},
		{"fail/ES256 token naming the RSA key", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", `{"alg":"ES256","kid":"`+f.rsa.KID()+`"}`, jsonString(t, claims(issRSA, nil)))
		}, CodeSignatureInvalid},
		{"fail/ES384 token naming a P-256 key", func(t *testing.T) string {
			return craft(t, attackerP384, "ES384", headerA("ES384"), payloadA)
		}, CodeSignatureInvalid},
		{"fail/PS256 token naming a JWK whose alg is RS256", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithAlg("PS256"))
		}, CodeSignatureInvalid},
		{"fail/alg header not a string", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `{"alg":["ES256"],"kid":"`+f.a.KID()+`"}`, payloadA)
		}, CodeTokenMalformed},
		{"fail/alg header missing", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `{"typ":"at+jwt","kid":"`+f.a.KID()+`"}`, payloadA)
		}, CodeTokenMalformed},

		// J2: keys by kid within the token's issuer only.
		{"fail/kid path traversal", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("kid", "../../dev/null"))
		}, CodeSignatureInvalid},
		{"fail/kid of issuer A on a token claiming the RSA issuer", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `{"alg":"ES256","kid":"`+f.a.KID()+`"}`, jsonString(t, claims(issRSA, nil)))
		}, CodeSignatureInvalid},
		{"fail/known kid but signed by another key", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", headerA("ES256"), payloadA)
		}, CodeSignatureInvalid},
		{"fail/no kid and signed by another key", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", `{"alg":"ES256","typ":"at+jwt"}`, payloadA)
		}, CodeSignatureInvalid},
		{"fail/kid not a string", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `{"alg":"ES256","typ":"at+jwt","kid":7}`, payloadA)
		}, CodeTokenMalformed},
		{"fail/kid empty", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("kid", ""))
		}, CodeTokenMalformed},
		{"fail/kid too long", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("kid", strings.Repeat("k", 300)))
		}, CodeTokenMalformed},

		// J3: header keys and key URLs are never used.
		{"fail/attacker key embedded in jwk header", func(t *testing.T) string {
			x := base64.RawURLEncoding.EncodeToString(attackerEC.X.FillBytes(make([]byte, 32)))
			y := base64.RawURLEncoding.EncodeToString(attackerEC.Y.FillBytes(make([]byte, 32)))
			h := `{"alg":"ES256","typ":"at+jwt","jwk":{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `"}}`
			return craft(t, attackerEC, "ES256", h, payloadA)
		}, CodeSignatureInvalid},
		{"fail/jku pointing at an attacker server", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", `{"alg":"ES256","typ":"at+jwt","kid":"attacker","jku":"`+jku.URL+`/jwks"}`, payloadA)
		}, CodeSignatureInvalid},
		{"fail/jku pointing at the metadata service", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", `{"alg":"ES256","typ":"at+jwt","jku":"http://169.254.169.254/latest/meta-data/"}`, payloadA)
		}, CodeSignatureInvalid},
		{"fail/x5u pointing at an attacker server", func(t *testing.T) string {
			return craft(t, attackerEC, "ES256", `{"alg":"ES256","typ":"at+jwt","x5u":"`+jku.URL+`/cert.pem"}`, payloadA)
		}, CodeSignatureInvalid},
		{"fail/attacker certificate in x5c", func(t *testing.T) string {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "as.example"},
				NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, attackerEC.Public(), attackerEC)
			if err != nil {
				t.Fatal(err)
			}
			h := `{"alg":"ES256","typ":"at+jwt","x5c":["` + base64.StdEncoding.EncodeToString(der) + `"]}`
			return craft(t, attackerEC, "ES256", h, payloadA)
		}, CodeSignatureInvalid},

		// J4: crit and b64.
		{"fail/crit exp", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("crit", []string{"exp"}))
		}, CodeTokenMalformed},
		{"fail/crit foo", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{}, devissuer.WithHeader("crit", []string{"foo"}), devissuer.WithHeader("foo", "bar"))
		}, CodeTokenMalformed},
		{"fail/crit empty array", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("crit", []string{}))
		}, CodeTokenMalformed},
		{"fail/b64 false", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("b64", false), devissuer.WithHeader("crit", []string{"b64"}))
		}, CodeTokenMalformed},
		{"fail/b64 true without crit", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("b64", true))
		}, CodeTokenMalformed},

		// J5: token types.
		{"fail/typ JWT where at+jwt is required", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("typ", "JWT"))
		}, CodeTypeInvalid},
		{"fail/typ missing where at+jwt is required", func(t *testing.T) string {
			return mint(t, f.a, nil, devissuer.WithHeader("typ", nil))
		}, CodeTypeInvalid},
		{"fail/typ dpop+jwt", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", "dpop+jwt"))
		}, CodeTypeInvalid},
		{"fail/typ secevent+jwt", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", "secevent+jwt"))
		}, CodeTypeInvalid},
		{"fail/typ logout+jwt", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", "logout+jwt"))
		}, CodeTypeInvalid},
		{"fail/typ refresh token", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", "refresh+jwt"))
		}, CodeTypeInvalid},
		{"fail/typ not a string", func(t *testing.T) string {
			return mint(t, f.rsa, nil, devissuer.WithHeader("typ", 1))
		}, CodeTokenMalformed},
		{"fail/ID token", func(t *testing.T) string {
			return mint(t, f.rsa, map[string]any{"aud": apiAud, "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"},
				devissuer.WithHeader("typ", "JWT"))
		}, CodeTypeInvalid},
		{"fail/ID token with only c_hash", func(t *testing.T) string {
			return mint(t, f.rsa, map[string]any{"c_hash": "LDktKdoQak3Pk0cnXxCltA"}, devissuer.WithHeader("typ", nil))
		}, CodeTypeInvalid},
		{"fail/DPoP proof", func(t *testing.T) string {
			return mint(t, f.rsa, map[string]any{"htm": "GET", "htu": "https://api.example/x"}, devissuer.WithHeader("typ", nil))
		}, CodeTypeInvalid},
		{"fail/SET with events claim even when typed at+jwt", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"events": map[string]any{"https://schemas.openid.net/secevent/caep/event-type/session-revoked": map[string]any{}}})
		}, CodeTypeInvalid},
		{"fail/token_use id", func(t *testing.T) string {
			return mint(t, f.rsa, map[string]any{"token_use": "id"})
		}, CodeTypeInvalid},

		// J6: times.
		{"fail/exp missing", func(t *testing.T) string { return mint(t, f.a, map[string]any{"exp": nil}) }, CodeClaimsMissing},
		{"fail/iat missing", func(t *testing.T) string { return mint(t, f.a, map[string]any{"iat": nil}) }, CodeClaimsMissing},
		{"fail/exp 10 minutes ago", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"exp": now - 600, "iat": now - 900})
		}, CodeExpired},
		{"fail/exp at year one is malformed, not absent", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"exp": int64(-62135596800)})
		}, CodeTokenMalformed},
		{"fail/exp negative is malformed", func(t *testing.T) string { return mint(t, f.a, map[string]any{"exp": -1}) }, CodeTokenMalformed},
		{"fail/nbf in the future", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"nbf": now + 600})
		}, CodeNotYetValid},
		{"fail/iat in the future", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iat": now + 600})
		}, CodeNotYetValid},
		{"fail/exp as a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"exp": "1767225600"})
		}, CodeTokenMalformed},
		{"fail/iat as a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iat": "now"})
		}, CodeTokenMalformed},
		{"fail/nbf as a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"nbf": "0"})
		}, CodeTokenMalformed},
		{"fail/exp null", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"), `{"iss":"`+issA+`","aud":"`+apiAud+`","iat":1,"exp":null}`)
		}, CodeTokenMalformed},

		// J7: exact issuer.
		{"fail/issuer with trailing slash", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iss": issA + "/"})
		}, CodeIssuerUntrusted},
		{"fail/issuer in other case", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iss": "https://AS.example"})
		}, CodeIssuerUntrusted},
		{"fail/unknown issuer", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iss": "https://evil.example"})
		}, CodeIssuerUntrusted},
		{"fail/iss missing", func(t *testing.T) string { return mint(t, f.a, map[string]any{"iss": nil}) }, CodeClaimsMissing},
		{"fail/iss not a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"iss": []string{issA}})
		}, CodeTokenMalformed},

		// J8: audience.
		{"fail/another API's audience", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"aud": "https://other-api.example"})
		}, CodeAudienceMismatch},
		{"fail/aud empty array", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"aud": []string{}})
		}, CodeAudienceMismatch},
		{"fail/aud missing", func(t *testing.T) string { return mint(t, f.a, map[string]any{"aud": nil}) }, CodeAudienceMismatch},
		{"fail/aud empty string", func(t *testing.T) string { return mint(t, f.a, map[string]any{"aud": ""}) }, CodeAudienceMismatch},
		{"fail/aud array with a number", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"aud": []any{apiAud, 1}})
		}, CodeTokenMalformed},
		{"fail/aud object", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"aud": map[string]any{"a": apiAud}})
		}, CodeTokenMalformed},

		// J9: ECDSA signature shape.
		{"fail/psychic signature of 64 zero bytes", func(t *testing.T) string {
			return withSig(headerA("ES256"), payloadA, make([]byte, 64))
		}, CodeSignatureInvalid},
		{"fail/DER encoded ECDSA signature", func(t *testing.T) string {
			digest := sha256.Sum256([]byte(signingInput(headerA("ES256"), payloadA)))
			der, err := ecdsa.SignASN1(rand.Reader, f.a.PrivateKey().(*ecdsa.PrivateKey), digest[:])
			if err != nil {
				t.Fatal(err)
			}
			return withSig(headerA("ES256"), payloadA, der)
		}, CodeSignatureInvalid},
		{"fail/r equals n", func(t *testing.T) string {
			sig := append(append([]byte{}, p256Order...), make([]byte, 31)...)
			return withSig(headerA("ES256"), payloadA, append(sig, 1))
		}, CodeSignatureInvalid},
		{"fail/s equals n", func(t *testing.T) string {
			sig := append(make([]byte, 31), 1)
			return withSig(headerA("ES256"), payloadA, append(sig, p256Order...))
		}, CodeSignatureInvalid},
		{"fail/signature one byte short", func(t *testing.T) string {
			tok := mint(t, f.a, nil)
			parts := strings.Split(tok, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			return withSig(headerA("ES256"), payloadA, sig[:63])
		}, CodeSignatureInvalid},
		{"fail/flipped signature byte", func(t *testing.T) string {
			tok := mint(t, f.a, nil)
			parts := strings.Split(tok, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[10] ^= 1
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, CodeSignatureInvalid},
		{"fail/payload swapped after signing", func(t *testing.T) string {
			tok := mint(t, f.a, nil)
			parts := strings.Split(tok, ".")
			evil := base64.RawURLEncoding.EncodeToString([]byte(jsonString(t, claims(issA, map[string]any{"sub": "admin"}))))
			return parts[0] + "." + evil + "." + parts[2]
		}, CodeSignatureInvalid},
		{"fail/empty signature", func(t *testing.T) string {
			return withSig(headerA("ES256"), payloadA, nil)
		}, CodeSignatureInvalid},
		{"fail/Ed25519 signature from another key", func(t *testing.T) string {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			return craft(t, other, "EdDSA", `{"alg":"EdDSA","kid":"`+f.ed.KID()+`"}`, jsonString(t, claims(issEd, nil)))
		}, CodeSignatureInvalid},
		{"fail/RSA signature from another key", func(t *testing.T) string {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			return craft(t, other, "RS256", `{"alg":"RS256","kid":"`+f.rsa.KID()+`"}`, jsonString(t, claims(issRSA, nil)))
		}, CodeSignatureInvalid},

		// J10: size and shape before parsing.
		{"fail/empty token", func(t *testing.T) string { return "" }, CodeTokenMissing},
		{"fail/one megabyte of dots", func(t *testing.T) string { return strings.Repeat(".", 1<<20) }, CodeTokenMalformed},
		{"fail/just over 16 KiB", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"pad": strings.Repeat("x", 16<<10)})
		}, CodeTokenMalformed},
		{"fail/JWS JSON serialization", func(t *testing.T) string {
			tok := mint(t, f.a, nil)
			p := strings.Split(tok, ".")
			return `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`
		}, CodeTokenMalformed},
		{"fail/JWE where a JWS is expected", func(t *testing.T) string {
			return "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ"
		}, CodeTokenMalformed},
		{"fail/duplicate alg in header", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"`+f.a.KID()+`"}`, payloadA)
		}, CodeTokenMalformed},
		{"fail/duplicate claim in payload", func(t *testing.T) string {
			p := strings.TrimSuffix(payloadA, "}") + `,"sub":"admin"}`
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"), p)
		}, CodeTokenMalformed},
		{"fail/claims nested deeper than 16", func(t *testing.T) string {
			p := strings.TrimSuffix(payloadA, "}") + `,"x":` + strings.Repeat("[", 16) + strings.Repeat("]", 16) + `}`
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"), p)
		}, CodeTokenMalformed},
		{"fail/header not an object", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", `["ES256"]`, payloadA)
		}, CodeTokenMalformed},
		{"fail/payload not an object", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"), `"claims"`)
		}, CodeTokenMalformed},
		{"fail/payload invalid UTF-8", func(t *testing.T) string {
			return craft(t, f.a.PrivateKey(), "ES256", headerA("ES256"), "{\"iss\":\"\xff\"}")
		}, CodeTokenMalformed},
		{"fail/empty header segment", func(t *testing.T) string {
			tok := mint(t, f.a, nil)
			return tok[strings.Index(tok, "."):]
		}, CodeTokenMalformed},
		{"fail/empty payload segment", func(t *testing.T) string {
			p := strings.Split(mint(t, f.a, nil), ".")
			return p[0] + ".." + p[2]
		}, CodeTokenMalformed},
		{"fail/padded base64", func(t *testing.T) string {
			p := strings.Split(mint(t, f.a, nil), ".")
			return p[0] + "." + p[1] + "==." + p[2]
		}, CodeTokenMalformed},
		{"fail/standard base64 alphabet", func(t *testing.T) string {
			return strings.ReplaceAll(strings.ReplaceAll(mint(t, f.a, nil), "-", "+"), "_", "/") + "+/"
		}, CodeTokenMalformed},
		{"fail/non-canonical base64 trailing bits", func(t *testing.T) string {
			p := strings.Split(mint(t, f.a, nil), ".")
			h := p[0]
			for len(h)%4 == 0 { // make sure there are spare bits to set
				h = base64.RawURLEncoding.EncodeToString([]byte(headerA("ES256") + strings.Repeat(" ", 1+len(h)%3)))
			}
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, h[len(h)-1])
			return h[:len(h)-1] + string(alphabet[last^1]) + "." + p[1] + "." + p[2]
		}, CodeTokenMalformed},
		{"fail/Bearer prefix left on", func(t *testing.T) string { return "Bearer " + mint(t, f.a, nil) }, CodeTokenMalformed},
		{"fail/trailing newline", func(t *testing.T) string { return mint(t, f.a, nil) + "\n" }, CodeTokenMalformed},
		{"fail/four segments", func(t *testing.T) string { return mint(t, f.a, nil) + ".x" }, CodeTokenMalformed},

		// Claim types (J11 is Rego's; the Token must be faithful).
		{"fail/sub not a string", func(t *testing.T) string { return mint(t, f.a, map[string]any{"sub": 42}) }, CodeTokenMalformed},
		{"fail/client_id not a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"client_id": []string{"a"}})
		}, CodeTokenMalformed},
		{"fail/scope not a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"scope": []string{"read"}})
		}, CodeTokenMalformed},
		{"fail/cnf not an object", func(t *testing.T) string { return mint(t, f.a, map[string]any{"cnf": "x"}) }, CodeTokenMalformed},
		{"fail/cnf jkt not a string", func(t *testing.T) string {
			return mint(t, f.a, map[string]any{"cnf": map[string]any{"jkt": 1}})
		}, CodeTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.token(t)
			got, err := f.v.Verify(context.Background(), raw)
			if testing.Verbose() && err != nil {
				t.Log(err)
			}
			wantCode(t, raw, got, err, tt.code)
		})
	}
	if n := jkuHits.Load(); n != 0 {
		t.Errorf("the jku/x5u server received %d requests, want 0", n)
	}
}

func TestVerifyExpiredMessage(t *testing.T) {
	f := newFixture(t)
	exp := time.Date(2026, 11, 27, 9, 45, 0, 0, time.UTC)
	raw := mint(t, f.a, map[string]any{"exp": exp.Unix()})
	_, err := f.v.Verify(context.Background(), raw)
	e, _ := err.(*Error)
	if e == nil || e.Code != CodeExpired || e.Message != "token expired 2026-11-27T09:45:00Z" {
		t.Fatalf("error = %#v", err)
	}
}

func TestVerifyTokenFields(t *testing.T) {
	f := newFixture(t)
	iat, nbf, exp := testNow.Add(-time.Minute), testNow.Add(-30*time.Second), testNow.Add(10*time.Minute)
	raw := mint(t, f.a, map[string]any{
		"sub": "user-7", "client_id": "client-9", "jti": "j-1", "scope": " read  write ",
		"iat": iat.Unix(), "nbf": nbf.Unix(), "exp": exp.Unix(),
		"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
	})
	tok, err := f.v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	want := Token{
		Hash: HashToken(raw), Source: SourceJWT, Issuer: issA, Alg: "ES256", Typ: "at+jwt", Kid: f.a.KID(),
		IssuedAt: iat, NotBefore: nbf, ExpiresAt: exp, Subject: "user-7", ClientID: "client-9", JTI: "j-1",
		Confirmation: Confirmation{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", X5TS256: "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
	}
	if tok.Hash != want.Hash || tok.Source != want.Source || tok.Issuer != want.Issuer || tok.Alg != want.Alg ||
		tok.Typ != want.Typ || tok.Kid != want.Kid || !tok.IssuedAt.Equal(iat) || !tok.NotBefore.Equal(nbf) ||
		!tok.ExpiresAt.Equal(exp) || tok.Subject != want.Subject || tok.ClientID != want.ClientID || tok.JTI != want.JTI ||
		tok.Confirmation != want.Confirmation {
		t.Fatalf("token = %+v\nwant    %+v", tok, want)
	}
	if strings.Join(tok.Scopes, ",") != "read,write" {
		t.Errorf("scopes = %q", tok.Scopes)
	}
	if sub := tok.Claims.Get(ast.StringTerm("sub")); sub == nil || sub.Value.Compare(ast.String("user-7")) != 0 {
		t.Errorf("claims sub = %v", sub)
	}
	if got := len(tok.Hash); got != 43 || strings.ContainsAny(tok.Hash, "=+/") {
		t.Errorf("hash %q is not unpadded base64url of SHA-256", tok.Hash)
	}
}

func TestVerifyScpArray(t *testing.T) {
	f := newFixture(t)
	for name, scp := range map[string]any{"array": []string{"a", "b"}, "string": "a b"} {
		raw := mint(t, f.a, map[string]any{"scope": nil, "scp": scp})
		tok, err := f.v.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Join(tok.Scopes, ",") != "a,b" {
			t.Errorf("%s: scopes = %q", name, tok.Scopes)
		}
	}
	raw := mint(t, f.a, map[string]any{"scope": nil, "scp": []any{"a", 1}})
	_, err := f.v.Verify(context.Background(), raw)
	wantCode(t, raw, nil, err, CodeTokenMalformed)
}

func TestHashToken(t *testing.T) {
	// SHA-256("abc") = ba7816bf...
	if got := HashToken("abc"); got != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Code: CodeExpired, Message: "token expired", Err: context.DeadlineExceeded}
	if e.Error() != "token_expired: token expired: context deadline exceeded" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if e.Unwrap() != context.DeadlineExceeded {
		t.Fatal("Unwrap")
	}
}

// J11 is decided in Rego; the Token must hand it sub and client_id exactly
// as the issuer wrote them, without merging or guessing.
func TestVerifyKeepsSubAndClientIDApart(t *testing.T) {
	f := newFixture(t)
	for _, c := range []map[string]any{
		{"sub": "alice", "client_id": "alice", "gty": "client-credentials"},
		{"sub": nil, "client_id": "svc"},
		{"sub": "alice", "client_id": nil},
	} {
		tok, err := f.v.Verify(context.Background(), mint(t, f.a, c))
		if err != nil {
			t.Fatal(err)
		}
		wantSub, _ := c["sub"].(string)
		wantClient, _ := c["client_id"].(string)
		if tok.Subject != wantSub || tok.ClientID != wantClient {
			t.Errorf("claims %v: Subject %q ClientID %q", c, tok.Subject, tok.ClientID)
		}
	}
}
