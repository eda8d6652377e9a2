package dpoptest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

func decode(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProver(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "PS384", "EdDSA"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			p, err := dpoptest.NewProver(alg)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.JKT()) != 43 {
				t.Fatalf("JKT %q", p.JKT())
			}
			proof, err := p.Proof("POST", "https://rs.example/x", "tok")
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(proof, ".")
			if len(parts) != 3 {
				t.Fatalf("%d segments", len(parts))
			}
			h, c := decode(t, parts[0]), decode(t, parts[1])
			if h["typ"] != "dpop+jwt" || h["alg"] != alg || h["jwk"] == nil {
				t.Errorf("header %v", h)
			}
			if _, ok := h["jwk"].(map[string]any)["d"]; ok {
				t.Error("jwk carries the private key")
			}
			if c["htm"] != "POST" || c["htu"] != "https://rs.example/x" || c["ath"] != dpoptest.ATH("tok") || c["jti"] == "" {
				t.Errorf("claims %v", c)
			}
			if iat, _ := c["iat"].(float64); time.Since(time.Unix(int64(iat), 0)) > time.Minute {
				t.Errorf("iat %v", c["iat"])
			}
		})
	}
}

func TestProofOptions(t *testing.T) {
	p, err := dpoptest.NewProver("ES256")
	if err != nil {
		t.Fatal(err)
	}
	proof, err := p.Proof("GET", "https://rs.example/x", "",
		dpoptest.WithHeader("typ", nil), dpoptest.WithHeader("kid", "k1"),
		dpoptest.WithClaim("jti", nil), dpoptest.WithClaim("iat", time.Unix(1000, 0)),
		dpoptest.WithNonce("n1"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(proof, ".")
	h, c := decode(t, parts[0]), decode(t, parts[1])
	if _, ok := h["typ"]; ok || h["kid"] != "k1" {
		t.Errorf("header %v", h)
	}
	if _, ok := c["jti"]; ok {
		t.Error("jti not removed")
	}
	if _, ok := c["ath"]; ok {
		t.Error("ath without a token")
	}
	if c["iat"] != float64(1000) || c["nonce"] != "n1" {
		t.Errorf("claims %v", c)
	}
	if _, err := dpoptest.NewProver("HS256"); err == nil {
		t.Error("HS256 prover created")
	}
}
