package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// verifyCase is one row of TestVerify. By default the ES256 test prover
// mints a correct proof for GET testURL with testToken, and the verifier
// has the default options and an in-memory replay cache.
type verifyCase struct {
	name string
	alg  string
	// opts change the default proof.
	opts []dpoptest.ProofOption
	// proofs, when set, replaces the default proof entirely.
	proofs func(t *testing.T, p *dpoptest.Prover) []string
	// req changes the request.
	req func(r *dpop.Request)
	// options configure the verifier.
	options dpop.Options
	// code is the expected error code, "" for success; msg a substring of
	// the expected message.
	code, msg string
}

func TestVerify(t *testing.T) {
	var cases []verifyCase
	for _, alg := range testAlgs {
		cases = append(cases, verifyCase{name: "ok/" + alg + " proof with access token", alg: alg})
	}
	cases = append(cases, okCases()...)
	cases = append(cases, d1Cases()...)
	cases = append(cases, d2Cases()...)
	cases = append(cases, d3Cases()...)
	cases = append(cases, d4Cases()...)
	cases = append(cases, d5to7Cases()...)
	cases = append(cases, d9Cases()...)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alg := tc.alg
			if alg == "" {
				alg = "ES256"
			}
			p := prover(t, alg)
			var proofs []string
			if tc.proofs != nil {
				proofs = tc.proofs(t, p)
			} else {
				proofs = []string{mustProof(t, p, "GET", testURL, testToken, tc.opts...)}
			}
			r := request(t, proofs...)
			if tc.req != nil {
				tc.req(&r)
			}
			replay := newMemReplay()
			v := newVerifier(t, replay, tc.options)
			got, err := v.Verify(context.Background(), r)

			if tc.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.JKT != p.JKT() {
					t.Errorf("JKT = %s, want %s", got.JKT, p.JKT())
				}
				if got.Alg == "" || got.JTIHash == "" || got.IssuedAt.IsZero() {
					t.Errorf("incomplete proof %+v", got)
				}
				if replay.len() != 1 {
					t.Errorf("replay cache holds %d keys, want 1", replay.len())
				}
				return
			}
			if got != nil {
				t.Errorf("Verify returned a proof with error")
			}
			de := wantCode(t, err, tc.code, tc.msg)
			// Nothing refused may spend a jti (D8 comes last).
			if replay.len() != 0 {
				t.Errorf("a refused proof spent a jti")
			}
			// The message and the error never repeat the proof or the token.
			for _, s := range append([]string{testToken}, proofs...) {
				if len(s) >= 8 && (strings.Contains(de.Message, s) || strings.Contains(de.Error(), s)) {
					t.Errorf("error repeats a proof or the token: %v", de)
				}
			}
			for _, proof := range proofs {
				if h, _, ok := strings.Cut(proof, "."); ok && len(h) > 16 && strings.Contains(de.Error(), h) {
					t.Errorf("error repeats the proof header: %v", de)
				}
			}
		})
	}
}

func okCases() []verifyCase {
	return []verifyCase{
		{name: "ok/typ in upper case", opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", "DPoP+JWT")}},
		{name: "ok/typ with application prefix", opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", "application/dpop+jwt")}},
		{name: "ok/htu in another spelling of the same URI", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("htu", "HTTPS://Resource.Example.ORG:443/x")}},
		{name: "ok/htu with dot segments and encoded unreserved characters", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("htu", "https://resource.example.org/a/../%78")}},
		{name: "ok/htu with merged slashes", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("htu", "https://resource.example.org//x")}},
		{name: "ok/query and fragment of htu are ignored", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("htu", "https://resource.example.org/x?a=1#frag")}},
		{name: "ok/query of the request is ignored",
			req: func(r *dpop.Request) { r.URL.RawQuery = "page=2" }},
		{name: "ok/proof without access token at the token endpoint",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "POST", "https://as.example.org/token", "")}
			},
			req: func(r *dpop.Request) {
				r.Method, r.URL, r.AccessToken = "POST", normalized("https://as.example.org/token"), ""
			}},
		{name: "ok/iat at the edge of the window", opts: []dpoptest.ProofOption{
			dpoptest.WithIssuedAt(time.Now().Add(-55 * time.Second))}},
		{name: "ok/iat slightly ahead within the leeway", opts: []dpoptest.ProofOption{
			dpoptest.WithIssuedAt(time.Now().Add(3 * time.Second))}},
		{name: "ok/iat with a fraction of a second", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("iat", float64(time.Now().Unix())+0.25)}},
		{name: "ok/kid jku x5u headers are ignored", opts: []dpoptest.ProofOption{
			dpoptest.WithHeader("kid", "other-key"),
			dpoptest.WithHeader("jku", "https://attacker.example/jwks"),
			dpoptest.WithHeader("x5u", "https://attacker.example/cert")}},
		{name: "ok/jwk with matching alg and use", proofs: func(t *testing.T, p *dpoptest.Prover) []string {
			k := p.PublicJWK()
			k["alg"], k["use"], k["kid"] = "ES256", "sig", "k1"
			return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
		}},
		{name: "ok/unknown claims are ignored", opts: []dpoptest.ProofOption{
			dpoptest.WithClaim("ext", map[string]any{"a": []any{1, 2}})}},
		{name: "ok/nonce claim without server nonces is ignored", opts: []dpoptest.ProofOption{dpoptest.WithNonce("abc")}},
		{name: "ok/restricted allow-list", alg: "EdDSA", options: dpop.Options{Algorithms: []string{"EdDSA"}}},
	}
}

func d1Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	return []verifyCase{
		{name: "fail/D1 no DPoP header", code: invalid, msg: "no DPoP proof",
			proofs: func(*testing.T, *dpoptest.Prover) []string { return nil }},
		{name: "fail/D1 two DPoP header values", code: invalid, msg: "more than one",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken), mustProof(t, p, "GET", testURL, testToken)}
			}},
		{name: "fail/D1 two proofs in one header value", code: invalid, msg: "characters outside",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken) + "," + mustProof(t, p, "GET", testURL, testToken)}
			}},
		{name: "fail/D1 empty header value", code: invalid, msg: "not a compact JWS",
			proofs: func(*testing.T, *dpoptest.Prover) []string { return []string{""} }},
		{name: "fail/D1 larger than 8 KiB", code: invalid, msg: "longer than",
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("pad", strings.Repeat("a", 9000))}},
		{name: "fail/D1 a JWE of five segments", code: invalid, msg: "not an encrypted one",
			proofs: func(*testing.T, *dpoptest.Prover) []string {
				return []string{"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn"}
			}},
		{name: "fail/D1 JWS JSON serialization", code: invalid, msg: "characters outside",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h, pl, s := segments(t, mustProof(t, p, "GET", testURL, testToken))
				return []string{`{"payload":"` + pl + `","protected":"` + h + `","signature":"` + s + `"}`}
			}},
		{name: "fail/D1 garbage", code: invalid, msg: "not a compact JWS",
			proofs: func(*testing.T, *dpoptest.Prover) []string { return []string{"garbage"} }},
		{name: "fail/D1 surrounding whitespace", code: invalid, msg: "characters outside",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{" " + mustProof(t, p, "GET", testURL, testToken)}
			}},
		{name: "fail/D1 empty signature segment", code: invalid, msg: "empty segment",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h, pl, _ := segments(t, mustProof(t, p, "GET", testURL, testToken))
				return []string{h + "." + pl + "."}
			}},
		{name: "fail/D1 padded base64url", code: invalid, msg: "characters outside",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h, pl, s := segments(t, mustProof(t, p, "GET", testURL, testToken))
				return []string{h + "." + pl + "." + s + "=="}
			}},
		{name: "fail/D1 non-canonical base64url", code: invalid, msg: "signature is not base64url",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h, pl, s := segments(t, mustProof(t, p, "GET", testURL, testToken))
				// An ES256 signature is 86 characters: the last one has 4
				// unused bits, which a strict decoder requires to be zero.
				const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
				last := strings.IndexByte(alphabet, s[len(s)-1])
				return []string{h + "." + pl + "." + s[:len(s)-1] + string(alphabet[last|1])}
			}},
		{name: "fail/D1 header is not JSON", code: invalid, msg: "header is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{signRaw(t, p, `{"typ":"dpop+jwt",`, validPayload(t))}
			}},
		{name: "fail/D1 header is a JSON array", code: invalid, msg: "header is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{signRaw(t, p, `["dpop+jwt"]`, validPayload(t))}
			}},
		{name: "fail/D1 duplicate header member", code: invalid, msg: "header is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{signRaw(t, p, `{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":`+jwkJSON(t, p.PublicJWK())+`}`, validPayload(t))}
			}},
		{name: "fail/D1 duplicate member inside the jwk", code: invalid, msg: "header is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := jwkJSON(t, p.PublicJWK())
				k = `{"crv":"P-384",` + k[1:]
				return []string{signRaw(t, p, `{"typ":"dpop+jwt","alg":"ES256","jwk":`+k+`}`, validPayload(t))}
			}},
		{name: "fail/D1 duplicate claim", code: invalid, msg: "payload is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				pl := validPayload(t)
				pl = `{"htm":"POST",` + pl[1:]
				return []string{signRaw(t, p, validHeader(t, p), pl)}
			}},
		{name: "fail/D1 payload is not JSON", code: invalid, msg: "payload is not a base64url JSON object",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{signRaw(t, p, validHeader(t, p), "not json")}
			}},
	}
}

func d2Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	return []verifyCase{
		{name: "fail/D2 typ JWT", code: invalid, msg: `typ must be "dpop+jwt"`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", "JWT")}},
		{name: "fail/D2 typ at+jwt", code: invalid, msg: `typ must be "dpop+jwt"`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", "at+jwt")}},
		{name: "fail/D2 typ missing", code: invalid, msg: `typ must be "dpop+jwt"`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", nil)}},
		{name: "fail/D2 typ not a string", code: invalid, msg: `typ must be "dpop+jwt"`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("typ", []string{"dpop+jwt"})}},
		{name: "fail/D2 alg none", code: invalid, msg: "alg is not allowed",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "none")}},
		{name: "fail/D2 alg none without signature", code: invalid, msg: "empty segment",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h := b64(`{"typ":"dpop+jwt","alg":"none","jwk":` + jwkJSON(t, p.PublicJWK()) + `}`)
				return []string{h + "." + b64(validPayload(t)) + "."}
			}},
		{name: "fail/D2 HS256 with an oct jwk", code: invalid, msg: "alg is not allowed",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "HS256"),
				dpoptest.WithHeader("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"})}},
		{name: "fail/D2 oct jwk with an allowed alg", code: invalid, msg: "asymmetric",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"})}},
		{name: "fail/D2 alg missing", code: invalid, msg: `"alg" is missing`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", nil)}},
		{name: "fail/D2 alg not on the configured allow-list", alg: "RS256", code: invalid, msg: "alg is not allowed",
			options: dpop.Options{Algorithms: []string{"ES256"}}},
		{name: "fail/D2 alg in lower case", code: invalid, msg: "alg is not allowed",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "es256")}},
		{name: "fail/D2 jwk missing", code: invalid, msg: `"jwk" is missing`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("jwk", nil)}},
		{name: "fail/D2 jwk is a string", code: invalid, msg: "must be a JSON object",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("jwk", "{}")}},
		{name: "fail/D2 jwk without kty", code: invalid, msg: `no valid "kty"`,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				delete(k, "kty")
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 jwk carries a private EC key", code: invalid, msg: "private key material",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", privateJWK(t, p)))}
			}},
		{name: "fail/D2 jwk carries a private RSA key", alg: "RS256", code: invalid, msg: "private key material",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", privateJWK(t, p)))}
			}},
		{name: "fail/D2 jwk carries a private Ed25519 key", alg: "EdDSA", code: invalid, msg: "private key material",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", privateJWK(t, p)))}
			}},
		{name: "fail/D2 jwk with only an RSA prime", alg: "RS256", code: invalid, msg: "private key material",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["p"] = "AQAB"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 ES256 with a P-384 key", alg: "ES384", code: invalid, msg: "does not fit the alg",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "ES256")}},
		{name: "fail/D2 RS256 with an EC key", code: invalid, msg: "does not fit the alg",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "RS256")}},
		{name: "fail/D2 EdDSA with an RSA key", alg: "PS256", code: invalid, msg: "does not fit the alg",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "EdDSA")}},
		{name: "fail/D2 ES256 with an Ed25519 key", alg: "EdDSA", code: invalid, msg: "does not fit the alg",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "ES256")}},
		{name: "fail/D2 jwk alg differs from the header alg", code: invalid, msg: "does not fit the alg",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["alg"] = "ES384"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 jwk for encryption", code: invalid, msg: `"use" must be "sig"`,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["use"] = "enc"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 jwk key_ops without verify", code: invalid, msg: `"key_ops"`,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["key_ops"] = []string{"encrypt"}
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 RSA key of 1024 bits", code: invalid, msg: "RSA modulus of 1024 bits",
			proofs: func(t *testing.T, _ *dpoptest.Prover) []string {
				key, err := rsa.GenerateKey(rand.Reader, 1024)
				if err != nil {
					t.Fatal(err)
				}
				k := map[string]any{
					"kty": "RSA",
					"n":   base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
					"e":   "AQAB",
				}
				h := `{"typ":"dpop+jwt","alg":"RS256","jwk":` + jwkJSON(t, k) + `}`
				proof, err := devissuer.SignCompact(key, "RS256", []byte(h), []byte(validPayload(t)))
				if err != nil {
					t.Fatal(err)
				}
				return []string{proof}
			}},
		{name: "fail/D2 RSA modulus with a leading zero octet", alg: "RS256", code: invalid, msg: "not a valid RSA public key",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
				k["n"] = base64.RawURLEncoding.EncodeToString(append([]byte{0}, n...))
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 RSA even exponent", alg: "RS256", code: invalid, msg: "RSA public exponent 65536",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["e"] = "AQAA"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 RSA exponent 1", alg: "RS256", code: invalid, msg: "RSA public exponent 1 ",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["e"] = "AQ"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 RSA key with the ROCA fingerprint, validly signed", code: invalid, msg: "ROCA",
			proofs: func(t *testing.T, _ *dpoptest.Prover) []string {
				key := keychecktest.ROCA()
				k := keychecktest.RSAJWK(key.N, key.E, "", "")
				h := `{"typ":"dpop+jwt","alg":"RS256","jwk":` + jwkJSON(t, k) + `}`
				proof, err := devissuer.SignCompact(key, "RS256", []byte(h), []byte(validPayload(t)))
				if err != nil {
					t.Fatal(err)
				}
				return []string{proof}
			}},
		{name: "fail/D2 Ed25519 key of small order", alg: "EdDSA", code: invalid, msg: "small order",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", keychecktest.SmallOrderEd25519("")))}
			}},
		{name: "fail/D2 EC point not on the curve", code: invalid, msg: "not a valid EC public key",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				x, _ := base64.RawURLEncoding.DecodeString(k["x"].(string))
				x[len(x)-1] ^= 1
				k["x"] = base64.RawURLEncoding.EncodeToString(x)
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 EC coordinate shorter than the curve size", code: invalid, msg: "not a valid EC public key",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				x, _ := base64.RawURLEncoding.DecodeString(k["x"].(string))
				k["x"] = base64.RawURLEncoding.EncodeToString(x[1:])
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 EC coordinate padded base64url", code: invalid, msg: "not a valid EC public key",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["x"] = k["x"].(string) + "="
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 unsupported curve", code: invalid, msg: "curve is not supported",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["crv"] = "secp256k1"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 X25519 key", alg: "EdDSA", code: invalid, msg: "curve is not supported",
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				k := p.PublicJWK()
				k["crv"] = "X25519"
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", k))}
			}},
		{name: "fail/D2 unknown key type", code: invalid, msg: "key type is not supported",
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("jwk", map[string]any{"kty": "AKP", "pub": "AAAA"})}},
		{name: "fail/D2 crit header", code: invalid, msg: `"crit" is not supported`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("crit", []string{"exp"}), dpoptest.WithHeader("exp", 1)}},
		{name: "fail/D2 empty crit header", code: invalid, msg: `"crit" is not supported`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("crit", []string{})}},
		{name: "fail/D2 b64 header", code: invalid, msg: `"b64" is not supported`,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("b64", false)}},
	}
}

func d3Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	const msg = "signature is invalid"
	return []verifyCase{
		{name: "fail/D3 flipped signature byte", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					s[10] ^= 0x01
					return s
				})}
			}},
		{name: "fail/D3 flipped RSA signature byte", alg: "PS256", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					s[len(s)-1] ^= 0x80
					return s
				})}
			}},
		{name: "fail/D3 flipped Ed25519 signature byte", alg: "EdDSA", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					s[0] ^= 0x01
					return s
				})}
			}},
		{name: "fail/D3 signed by another key", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				other, err := dpoptest.NewProver("ES256")
				if err != nil {
					t.Fatal(err)
				}
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithSigner(other))}
			}},
		{name: "fail/D3 header jwk of another key", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				other, err := dpoptest.NewProver("ES256")
				if err != nil {
					t.Fatal(err)
				}
				return []string{mustProof(t, p, "GET", testURL, testToken, dpoptest.WithHeader("jwk", other.PublicJWK()))}
			}},
		{name: "fail/D3 payload changed after signing", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				h, _, s := segments(t, mustProof(t, p, "GET", testURL, testToken))
				_, pl, _ := segments(t, mustProof(t, p, "POST", testURL, testToken))
				return []string{h + "." + pl + "." + s}
			}},
		{name: "fail/D3 DER-encoded ECDSA signature", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(s[:32]), new(big.Int).SetBytes(s[32:])})
					if err != nil {
						t.Fatal(err)
					}
					return der
				})}
			}},
		{name: "fail/D3 all-zero ECDSA signature", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					return make([]byte, len(s))
				})}
			}},
		{name: "fail/D3 ECDSA r equal to the group order", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					elliptic.P256().Params().N.FillBytes(s[:32])
					return s
				})}
			}},
		{name: "fail/D3 truncated RSA signature", alg: "RS256", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					return s[1:]
				})}
			}},
		{name: "fail/D3 Ed25519 signature with an extra byte", alg: "EdDSA", code: invalid, msg: msg,
			proofs: func(t *testing.T, p *dpoptest.Prover) []string {
				return []string{withSignature(t, mustProof(t, p, "GET", testURL, testToken), func(s []byte) []byte {
					return append(s, 0)
				})}
			}},
		{name: "fail/D3 RS256 header on a PS256 signature", alg: "PS256", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithHeader("alg", "RS256")}},
	}
}

func d4Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	cases := []verifyCase{}
	for _, claim := range []string{"jti", "htm", "htu", "iat", "ath"} {
		cases = append(cases, verifyCase{
			name: "fail/D4 " + claim + " missing", code: invalid, msg: `"` + claim + `" is missing`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim(claim, nil)},
		})
	}
	return append(cases,
		verifyCase{name: "fail/D4 jti of 10 KB", code: invalid, msg: "longer than",
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("jti", strings.Repeat("j", 10<<10))}},
		verifyCase{name: "fail/D4 jti longer than 256 bytes", code: invalid, msg: `"jti" must be a string of 1 to 256 bytes`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("jti", strings.Repeat("j", 257))}},
		verifyCase{name: "fail/D4 empty jti", code: invalid, msg: `"jti" must be`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("jti", "")}},
		verifyCase{name: "fail/D4 jti is a number", code: invalid, msg: `"jti" must be`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("jti", 12345)}},
		verifyCase{name: "fail/D4 htm is an array", code: invalid, msg: `"htm" must be`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("htm", []string{"GET"})}},
		verifyCase{name: "fail/D4 htu is an object", code: invalid, msg: `"htu" must be`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("htu", map[string]any{"href": testURL})}},
		verifyCase{name: "fail/D4 iat as a string", code: invalid, msg: `"iat" must be a number`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("iat", strconv.FormatInt(time.Now().Unix(), 10))}},
		verifyCase{name: "fail/D4 iat as a boolean", code: invalid, msg: `"iat" must be a number`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("iat", true)}},
		verifyCase{name: "fail/D4 negative iat", code: invalid, msg: `"iat" must be a number`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("iat", -1)}},
		verifyCase{name: "fail/D4 iat past 2262", code: invalid, msg: `"iat" must be a number`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("iat", int64(9223372037))}},
		verifyCase{name: "fail/D4 huge iat", code: invalid, msg: `"iat" must be a number`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("iat", 1e300)}},
		verifyCase{name: "fail/D4 ath is a number", code: invalid, msg: `"ath" must be a string`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", 1)}},
		verifyCase{name: "fail/D4 ath without an access token", code: invalid, msg: "no access token was presented",
			req: func(r *dpop.Request) { r.AccessToken = "" }},
		verifyCase{name: "fail/D4 nonce is not a string", code: invalid, msg: `"nonce" must be`,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("nonce", 7)}},
	)
}

func d5to7Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	htu := func(u string) []dpoptest.ProofOption { return []dpoptest.ProofOption{dpoptest.WithClaim("htu", u)} }
	const htuMsg = "htu does not match"
	return []verifyCase{
		{name: "fail/D5 htm get for GET", code: invalid, msg: "htm does not match",
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("htm", "get")}},
		{name: "fail/D5 POST proof on GET", code: invalid, msg: "htm does not match",
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("htm", "POST")}},
		{name: "fail/D5 GET proof on HEAD", code: invalid, msg: "htm does not match",
			req: func(r *dpop.Request) { r.Method = "HEAD" }},
		{name: "fail/D6 http instead of https", code: invalid, msg: htuMsg, opts: htu("http://resource.example.org/x")},
		{name: "fail/D6 other host", code: invalid, msg: htuMsg, opts: htu("https://other.example.org/x")},
		{name: "fail/D6 host suffix", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org.evil.example/x")},
		{name: "fail/D6 other port", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org:8443/x")},
		{name: "fail/D6 other path", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org/y")},
		{name: "fail/D6 path prefix", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org/x/y")},
		{name: "fail/D6 trailing slash", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org/x/")},
		{name: "fail/D6 path case", code: invalid, msg: htuMsg, opts: htu("https://resource.example.org/X")},
		{name: "fail/D6 encoded slash", code: invalid, msg: "path the request-path rules refuse", opts: htu("https://resource.example.org/%2Fx")},
		{name: "fail/D6 htu with a backslash", code: invalid, msg: "path the request-path rules refuse", opts: htu(`https://resource.example.org/a\..\x`)},
		{name: "fail/D6 htu with an encoded backslash", code: invalid, msg: "path the request-path rules refuse", opts: htu("https://resource.example.org/a%5C..%5Cx")},
		{name: "fail/D6 htu double-encoded", code: invalid, msg: "path the request-path rules refuse", opts: htu("https://resource.example.org/%2578")},
		{name: "fail/D6 htu with overlong UTF-8", code: invalid, msg: "path the request-path rules refuse", opts: htu("https://resource.example.org/%C0%AFx")},
		{name: "fail/D6 relative htu", code: invalid, msg: "not an absolute http(s) URL", opts: htu("/x")},
		{name: "fail/D6 htu with user information", code: invalid, msg: "not an absolute http(s) URL",
			opts: htu("https://user@resource.example.org/x")},
		{name: "fail/D6 htu of another scheme", code: invalid, msg: "not an absolute http(s) URL",
			opts: htu("wss://resource.example.org/x")},
		{name: "fail/D7 iat 1 h ago", code: invalid, msg: "too old",
			opts: []dpoptest.ProofOption{dpoptest.WithIssuedAt(time.Now().Add(-time.Hour))}},
		{name: "fail/D7 iat just outside the window", code: invalid, msg: "too old",
			opts: []dpoptest.ProofOption{dpoptest.WithIssuedAt(time.Now().Add(-62 * time.Second))}},
		{name: "fail/D7 iat 10 min ahead", code: invalid, msg: "in the future",
			opts: []dpoptest.ProofOption{dpoptest.WithIssuedAt(time.Now().Add(10 * time.Minute))}},
		{name: "fail/D7 iat beyond a shorter configured window", code: invalid, msg: "too old",
			options: dpop.Options{IATWindow: 10 * time.Second},
			opts:    []dpoptest.ProofOption{dpoptest.WithIssuedAt(time.Now().Add(-20 * time.Second))}},
	}
}

func d9Cases() []verifyCase {
	invalid := dpop.CodeProofInvalid
	const msg = "ath does not match"
	sum := sha256.Sum256([]byte(testToken))
	return []verifyCase{
		{name: "fail/D9 ath of another token", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", dpoptest.ATH("another-token"))}},
		{name: "fail/D9 proof for another token", code: invalid, msg: msg,
			req: func(r *dpop.Request) { r.AccessToken = "another-token" }},
		{name: "fail/D9 padded ath", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", base64.URLEncoding.EncodeToString(sum[:]))}},
		{name: "fail/D9 ath in standard base64", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", base64.RawStdEncoding.EncodeToString(sum[:]))}},
		{name: "fail/D9 ath over the authorization header value", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", dpoptest.ATH("DPoP "+testToken))}},
		{name: "fail/D9 empty ath", code: invalid, msg: msg,
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("ath", "")}},
	}
}

// validHeader and validPayload are the JSON of a correct proof for the
// default request, for hand-made variations.
func validHeader(t *testing.T, p *dpoptest.Prover) string {
	t.Helper()
	return `{"typ":"dpop+jwt","alg":"` + p.Alg() + `","jwk":` + jwkJSON(t, p.PublicJWK()) + `}`
}

func validPayload(t *testing.T) string {
	t.Helper()
	c := map[string]any{"jti": "j-" + time.Now().String(), "htm": "GET", "htu": testURL, "iat": time.Now().Unix(), "ath": dpoptest.ATH(testToken)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jwkJSON(t *testing.T, k map[string]any) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func signRaw(t *testing.T, p *dpoptest.Prover, header, payload string) string {
	t.Helper()
	proof, err := p.SignRaw([]byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// privateJWK is the prover's private key as a JWK (with "d").
func privateJWK(t *testing.T, p *dpoptest.Prover) map[string]any {
	t.Helper()
	k, err := jwk.Import(p.Key())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["d"]; !ok {
		t.Fatal("private JWK without d")
	}
	return m
}

func TestVerifyProofIsSignedByItsOwnKeyOnly(t *testing.T) {
	// A proof whose header names another key through x5c and kid, but is
	// signed by the jwk it carries, verifies and binds to that jwk.
	p := prover(t, "ES256")
	other := prover(t, "ES384")
	proof := mustProof(t, p, "GET", testURL, testToken,
		dpoptest.WithHeader("kid", other.JKT()),
		dpoptest.WithHeader("x5c", []string{"MIIB"}))
	v := newVerifier(t, newMemReplay(), dpop.Options{})
	got, err := v.Verify(context.Background(), request(t, proof))
	if err != nil {
		t.Fatal(err)
	}
	if got.JKT != p.JKT() {
		t.Fatalf("JKT = %s, want the jwk's %s", got.JKT, p.JKT())
	}
}

func TestVerifyRefusedProofDoesNotSpendItsJTI(t *testing.T) {
	p := prover(t, "ES256")
	proof := mustProof(t, p, "GET", testURL, testToken)
	v := newVerifier(t, openBolt(t), dpop.Options{})
	ctx := context.Background()

	wrong := request(t, proof)
	wrong.Method = "POST"
	_, err := v.Verify(ctx, wrong)
	wantCode(t, err, dpop.CodeProofInvalid, "htm")

	if _, err := v.Verify(ctx, request(t, proof)); err != nil {
		t.Fatalf("the proof's first valid use: %v", err)
	}
}

func TestVerifyStoreFailureIsNotAProofError(t *testing.T) {
	p := prover(t, "ES256")
	v := newVerifier(t, failingReplay{}, dpop.Options{})
	_, err := v.Verify(context.Background(), request(t, mustProof(t, p, "GET", testURL, testToken)))
	var de *dpop.Error
	if err == nil || errors.As(err, &de) {
		t.Fatalf("error = %v, want a plain error", err)
	}
	if !errors.Is(err, errStoreDown) {
		t.Fatalf("error %v does not wrap the store's", err)
	}
}

func TestVerifyRequestWithoutURL(t *testing.T) {
	v := newVerifier(t, newMemReplay(), dpop.Options{})
	_, err := v.Verify(context.Background(), dpop.Request{Method: "GET", Proofs: []string{"x"}})
	var de *dpop.Error
	if err == nil || errors.As(err, &de) {
		t.Fatalf("error = %v, want a plain error", err)
	}
}

func TestVerifyUsesTheConfiguredClock(t *testing.T) {
	p := prover(t, "ES256")
	past := time.Now().Add(-24 * time.Hour)
	proof := mustProof(t, p, "GET", testURL, testToken, dpoptest.WithIssuedAt(past))
	v := newVerifier(t, newMemReplay(), dpop.Options{Now: func() time.Time { return past.Add(10 * time.Second) }})
	got, err := v.Verify(context.Background(), request(t, proof))
	if err != nil {
		t.Fatal(err)
	}
	if got.IssuedAt.Unix() != past.Unix() {
		t.Fatalf("IssuedAt = %v, want %v", got.IssuedAt, past)
	}
}

func TestNewVerifier(t *testing.T) {
	r := newMemReplay()
	bad := []struct {
		name   string
		replay dpop.Replay
		opts   dpop.Options
	}{
		{"fail/no replay cache", nil, dpop.Options{}},
		{"fail/alg none on the allow-list", r, dpop.Options{Algorithms: []string{"ES256", "none"}}},
		{"fail/HS256 on the allow-list", r, dpop.Options{Algorithms: []string{"HS256"}}},
		{"fail/negative window", r, dpop.Options{IATWindow: -time.Second}},
		{"fail/window of a day", r, dpop.Options{IATWindow: 24 * time.Hour}},
		{"fail/negative leeway", r, dpop.Options{IATLeeway: -time.Second}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dpop.NewVerifier(tc.replay, tc.opts); err == nil {
				t.Fatal("NewVerifier accepted bad options")
			}
		})
	}
	t.Run("ok/defaults", func(t *testing.T) {
		v := newVerifier(t, r, dpop.Options{})
		if got := strings.Join(v.Algorithms(), " "); got != strings.Join(dpop.SupportedAlgorithms, " ") {
			t.Fatalf("Algorithms = %s", got)
		}
	})
	t.Run("ok/allow-list deduplicated in order", func(t *testing.T) {
		v := newVerifier(t, r, dpop.Options{Algorithms: []string{"EdDSA", "ES256", "EdDSA"}})
		if got := strings.Join(v.Algorithms(), " "); got != "EdDSA ES256" {
			t.Fatalf("Algorithms = %s", got)
		}
	})
}

// TestVerifyEd25519AndECKeysFromFixedSeeds checks keys given to
// NewProverWithKey: a deterministic Ed25519 key and a P-521 key (whose
// coordinates are 66 bytes, with leading zero bits).
func TestVerifyEd25519AndECKeysFromFixedSeeds(t *testing.T) {
	seed := sha256.Sum256([]byte("dpop test seed"))
	edKey := ed25519.NewKeyFromSeed(seed[:])
	p, err := dpoptest.NewProverWithKey("EdDSA", edKey)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	q, err := dpoptest.NewProverWithKey("ES512", ecKey)
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, newMemReplay(), dpop.Options{})
	for _, pr := range []*dpoptest.Prover{p, q} {
		got, err := v.Verify(context.Background(), request(t, mustProof(t, pr, "GET", testURL, testToken)))
		if err != nil {
			t.Fatalf("%s: %v", pr.Alg(), err)
		}
		if got.JKT != pr.JKT() {
			t.Fatalf("%s: JKT = %s, want %s", pr.Alg(), got.JKT, pr.JKT())
		}
	}
}

// TestNoLeewayAllowsNoProofFromTheFuture: a configured dpop.iat_leeway of 0
// reaches the verifier as NoLeeway and means none, not the default.
func TestNoLeewayAllowsNoProofFromTheFuture(t *testing.T) {
	p := prover(t, "ES256")
	now := time.Now().Truncate(time.Second)
	for name, tc := range map[string]struct {
		leeway time.Duration
		ok     bool
	}{
		"ok/default leeway takes a proof 3s ahead": {0, true},
		"fail/no leeway refuses a proof 3s ahead":  {dpop.NoLeeway, false},
	} {
		t.Run(name, func(t *testing.T) {
			proof := mustProof(t, p, "GET", testURL, testToken, dpoptest.WithIssuedAt(now.Add(3*time.Second)))
			v := newVerifier(t, newMemReplay(), dpop.Options{IATLeeway: tc.leeway, Now: func() time.Time { return now }})
			_, err := v.Verify(context.Background(), request(t, proof))
			if (err == nil) != tc.ok {
				t.Fatalf("Verify() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
