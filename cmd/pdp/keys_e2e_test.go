package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// smallOrderPoints are the encodings of the eight Ed25519 points of small
// order. With a public key among them, one of them is a valid R of the
// signature (R, S = 0) of any message.
var smallOrderPoints = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
}

// forgeCompact returns header.payload.signature where the signature is
// forged, not made with a private key: for a small-order Ed25519 key, an
// (R, 0) that verifies (each R does for one message in eight, so the
// payload's jti is changed until one does); for an RSA key with e = 1, the
// PKCS #1 v1.5 encoding itself (m^1 = m).
func forgeCompact(t *testing.T, pub any, header, payload map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	input := b64(h) + "." + b64(p)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		for range 100 {
			for _, r := range smallOrderPoints {
				sig, _ := hex.DecodeString(r)
				sig = append(sig, make([]byte, 32)...)
				if ed25519.Verify(k, []byte(input), sig) {
					return input + "." + b64(sig)
				}
			}
			payload["jti"] = rand.Text()
			p, _ = json.Marshal(payload)
			input = b64(h) + "." + b64(p)
		}
		t.Fatal("no forged signature verifies")
	case *rsa.PublicKey:
		sum := sha256.Sum256([]byte(input))
		prefix, _ := hex.DecodeString("3031300d060960864801650304020105000420")
		em := make([]byte, (k.N.BitLen()+7)/8)
		em[1] = 1
		tail := append(prefix, sum[:]...)
		for i := 2; i < len(em)-len(tail)-1; i++ {
			em[i] = 0xff
		}
		copy(em[len(em)-len(tail):], tail)
		return input + "." + b64(em)
	}
	t.Fatalf("cannot forge with %T", pub)
	return ""
}

// weakKeysStatusGolden is the issuer entry of /v1/status docs/keys.md quotes.
var weakKeysStatusGolden = docGolden("status-issuer-refused-keys.json", "TestWeakKeysAreRefusedByEveryLoader")

// TestWeakKeysAreRefusedByEveryLoader runs in the binary that links OPA,
// whose init sets jwx's minimum RSA modulus and exponent to 0: the issuer
// JWKS, the SSF transmitter JWKS and the DPoP proof jwk must refuse weak
// keys by their own check, name them in /v1/status, and deny what they
// signed.
func TestWeakKeysAreRefusedByEveryLoader(t *testing.T) {
	roca := keychecktest.ROCA()
	strong, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e1 := &rsa.PublicKey{N: strong.N, E: 1}
	small, _ := hex.DecodeString("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
	good, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	goodJWK, err := jwk.Import(&good.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = goodJWK.Set("kid", "good")
	_ = goodJWK.Set("alg", "ES256")

	// An issuer whose JWKS publishes a good key next to three weak ones.
	jwks, _ := json.Marshal(map[string]any{"keys": []any{
		goodJWK,
		keychecktest.RSAJWK(roca.N, roca.E, "roca", "RS256"),
		keychecktest.RSAJWK(e1.N, e1.E, "e1", "RS256"),
		keychecktest.SmallOrderEd25519("small"),
	}})
	weakIssuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(weakIssuer.Close)

	// A transmitter whose JWKS file holds its key and the ROCA key.
	tx, err := devissuer.New("https://tx.example", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	var txKeys struct {
		Keys []any `json:"keys"`
	}
	if err := json.Unmarshal(tx.JWKS(), &txKeys); err != nil {
		t.Fatal(err)
	}
	txKeys.Keys = append(txKeys.Keys, keychecktest.RSAJWK(roca.N, roca.E, "roca", "RS256"))
	txJWKS := filepath.Join(t.TempDir(), "tx-jwks.json")
	b, _ := json.Marshal(txKeys)
	if err := os.WriteFile(txJWKS, b, 0o600); err != nil {
		t.Fatal(err)
	}

	tb := newGuardrailTestbed(t, func(c *config.Config) {
		c.Issuers = append(c.Issuers, config.Issuer{
			Issuer: weakIssuer.URL, JWKSURI: weakIssuer.URL + "/jwks", Audiences: []string{testAudience},
			Algorithms: []string{"ES256", "RS256", "EdDSA"}, AccessTokenType: "at+jwt",
		})
		c.SSF.Transmitters = []config.Transmitter{{
			Issuer: tx.URL(), JWKSFile: txJWKS, Audience: "https://pdp.example/ssf", TokenIssuers: []string{weakIssuer.URL},
		}}
	})

	claims := func() map[string]any {
		now := time.Now()
		return map[string]any{
			"iss": weakIssuer.URL, "aud": testAudience, "sub": "alice", "client_id": "web-app", "scope": "accounts:read",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": rand.Text(),
		}
	}
	sign := func(t *testing.T, key crypto.Signer, alg, kid string) string {
		h, _ := json.Marshal(map[string]any{"alg": alg, "kid": kid, "typ": "at+jwt"})
		p, _ := json.Marshal(claims())
		tok, err := devissuer.SignCompact(key, alg, h, p)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("issuer/ok/token signed by the good key", func(t *testing.T) {
		check(t, tb.decide(t, bearer(sign(t, good, "ES256", "good")), nil), want{true, 200, ""})
	})
	issuerCases := []struct {
		name string
		tok  func(t *testing.T) string
	}{
		{"issuer/fail/token signed by the ROCA key", func(t *testing.T) string { return sign(t, roca, "RS256", "roca") }},
		{"issuer/fail/token forged for the RSA key with e 1", func(t *testing.T) string {
			return forgeCompact(t, e1, map[string]any{"alg": "RS256", "kid": "e1", "typ": "at+jwt"}, claims())
		}},
		{"issuer/fail/token forged for the small-order Ed25519 key", func(t *testing.T) string {
			return forgeCompact(t, ed25519.PublicKey(small), map[string]any{"alg": "EdDSA", "kid": "small", "typ": "at+jwt"}, claims())
		}},
	}
	for _, tc := range issuerCases {
		t.Run(tc.name, func(t *testing.T) {
			d := tb.decide(t, bearer(tc.tok(t)), nil)
			if d.Allow || d.Status != 401 {
				t.Fatalf("allow=%v status=%d reasons=%v, want a 401 deny", d.Allow, d.Status, d.codes())
			}
		})
	}

	ssfPush := func(t *testing.T, key crypto.Signer, alg, kid string) (int, map[string]any) {
		header, _ := json.Marshal(map[string]any{"alg": alg, "typ": "secevent+jwt", "kid": kid})
		payload, _ := json.Marshal(map[string]any{
			"iss": tx.URL(), "aud": "https://pdp.example/ssf", "iat": time.Now().Unix(), "jti": rand.Text(),
			"sub_id": map[string]any{"format": "iss_sub", "iss": weakIssuer.URL, "sub": "mallory"},
			"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
		})
		set, err := devissuer.SignCompact(key, alg, header, payload)
		if err != nil {
			t.Fatal(err)
		}
		return tb.call(t, "POST", "/v1/ssf/events", "application/secevent+jwt", set, "")
	}
	t.Run("ssf/ok/SET signed by the transmitter's key", func(t *testing.T) {
		if status, out := ssfPush(t, tx.PrivateKey(), "ES256", tx.KID()); status != http.StatusAccepted {
			t.Fatalf("push = %d %v", status, out)
		}
	})
	t.Run("ssf/fail/SET signed by the ROCA key", func(t *testing.T) {
		status, out := ssfPush(t, roca, "RS256", "roca")
		if status != http.StatusBadRequest || out["err"] != "invalid_key" {
			t.Fatalf("push = %d %v, want 400 invalid_key", status, out)
		}
	})

	const url = "https://api.example.com/v1/accounts/42"
	rocaProver, err := dpoptest.NewProverWithKey("RS256", roca)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dpop/fail/proof signed by the ROCA key it carries", func(t *testing.T) {
		bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": rocaProver.JKT()}})
		h, r := dpopRequest(t, rocaProver, bound, "GET", url)
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("dpop/fail/proof forged for the small-order Ed25519 key it carries", func(t *testing.T) {
		smallJWK, err := jwk.Import(ed25519.PublicKey(small))
		if err != nil {
			t.Fatal(err)
		}
		tp, _ := smallJWK.Thumbprint(crypto.SHA256)
		bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": b64(tp)}})
		proof := forgeCompact(t, ed25519.PublicKey(small),
			map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": keychecktest.SmallOrderEd25519("")},
			map[string]any{"jti": rand.Text(), "htm": "GET", "htu": url, "iat": time.Now().Unix(), "ath": dpoptest.ATH(bound)})
		check(t, tb.decide(t, map[string]any{"authorization": "DPoP " + bound, "dpop": proof}, at("GET", url)),
			want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("dpop/fail/proof with an RSA jwk of exponent 1", func(t *testing.T) {
		p, _ := dpoptest.NewProverWithKey("RS256", strong)
		bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": p.JKT()}})
		h, r := dpopRequest(t, p, bound, "GET", url, dpoptest.WithHeader("jwk", keychecktest.RSAJWK(e1.N, 1, "", "")))
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})

	t.Run("status/refused keys are named", func(t *testing.T) {
		status, out := tb.call(t, "GET", "/v1/status", "", "", "")
		if status != http.StatusOK {
			t.Fatalf("GET /v1/status = %d", status)
		}
		raw, _ := json.Marshal(out)
		var all struct{ Issuers []map[string]any }
		_ = json.Unmarshal(raw, &all)
		for _, is := range all.Issuers {
			if is["issuer"] == weakIssuer.URL {
				b, _ := json.Marshal(is)
				checkDocGolden(t, weakKeysStatusGolden, b, weakIssuer.URL, "https://as.example.com")
			}
		}
		var st struct {
			Issuers []struct {
				Issuer      string
				Keys        int
				RefusedKeys []struct {
					KID     string
					Reason  string
					Refused bool
				} `json:"refused_keys"`
			}
			SSF []struct {
				Issuer      string
				Keys        int
				RefusedKeys []struct {
					KID    string
					Reason string
				} `json:"refused_keys"`
			} `json:"ssf"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		reasons := map[string]string{}
		for _, is := range st.Issuers {
			if is.Issuer != weakIssuer.URL {
				continue
			}
			if is.Keys != 1 {
				t.Errorf("issuer keys = %d, want only the good one", is.Keys)
			}
			for _, k := range is.RefusedKeys {
				if k.Refused {
					reasons["issuer/"+k.KID] = k.Reason
				}
			}
		}
		for _, tr := range st.SSF {
			for _, k := range tr.RefusedKeys {
				reasons["ssf/"+k.KID] = k.Reason
			}
		}
		for kid, want := range map[string]string{
			"issuer/roca": "ROCA", "issuer/e1": "exponent 1 ", "issuer/small": "small order", "ssf/roca": "ROCA",
		} {
			if !strings.Contains(reasons[kid], want) {
				t.Errorf("%s: reason %q, want it to name %q (status %s)", kid, reasons[kid], want, raw)
			}
		}
	})
}
