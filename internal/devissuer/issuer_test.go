package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const testIssuer = "https://as.example"

func newIssuer(t *testing.T, alg string) *Issuer {
	t.Helper()
	iss, err := New(testIssuer, alg)
	if err != nil {
		t.Fatalf("New(%s): %v", alg, err)
	}
	return iss
}

// verifyWithJWKS checks tok against the issuer's published JWKS with jwx
// and returns the header and claims.
func verifyWithJWKS(t *testing.T, iss *Issuer, tok string) (map[string]any, map[string]any) {
	t.Helper()
	set, err := jwk.Parse(iss.JWKS())
	if err != nil {
		t.Fatalf("parsing JWKS: %v", err)
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true)))
	if err != nil {
		t.Fatalf("verifying token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return decodeSegment(t, tok, 0), claims
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	seg := strings.Split(tok, ".")[i]
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewAndMint(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			iss := newIssuer(t, alg)
			tok, err := iss.Mint(map[string]any{"sub": "alice", "aud": "https://api.example"})
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims := verifyWithJWKS(t, iss, tok)
			if hdr["alg"] != alg || hdr["typ"] != "at+jwt" || hdr["kid"] != iss.KID() {
				t.Errorf("header = %v", hdr)
			}
			if claims["iss"] != testIssuer || claims["sub"] != "alice" || claims["aud"] != "https://api.example" {
				t.Errorf("claims = %v", claims)
			}
			if claims["jti"] == "" || claims["jti"] == nil {
				t.Error("no jti")
			}
			iat, exp := claims["iat"].(float64), claims["exp"].(float64)
			if exp-iat != DefaultTTL.Seconds() {
				t.Errorf("exp - iat = %v, want %v", exp-iat, DefaultTTL.Seconds())
			}
		})
	}
	t.Run("fail/unknown alg", func(t *testing.T) {
		if _, err := New(testIssuer, "HS256"); !errors.Is(err, ErrUnsupportedAlg) {
			t.Fatalf("New(HS256) error = %v", err)
		}
	})
	t.Run("fail/empty issuer", func(t *testing.T) {
		if _, err := New("", "ES256"); err == nil {
			t.Fatal("New with empty URL succeeded")
		}
	})
}

func TestJWKSIsPublicWithThumbprintKid(t *testing.T) {
	iss := newIssuer(t, "ES256")
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(iss.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(doc.Keys))
	}
	k := doc.Keys[0]
	if _, private := k["d"]; private {
		t.Fatal("JWKS publishes the private key")
	}
	if k["use"] != "sig" || k["alg"] != "ES256" || k["kid"] != iss.KID() {
		t.Errorf("key = %v", k)
	}
	// RFC 7638 §3: required members only, lexicographic order, no spaces.
	canonical := `{"crv":"` + k["crv"].(string) + `","kty":"EC","x":"` + k["x"].(string) + `","y":"` + k["y"].(string) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); iss.KID() != want {
		t.Errorf("KID() = %s, want thumbprint %s", iss.KID(), want)
	}
	if _, ok := iss.PrivateKey().(*ecdsa.PrivateKey); !ok {
		t.Errorf("PrivateKey() is %T", iss.PrivateKey())
	}
}

func TestMintOverrides(t *testing.T) {
	iss := newIssuer(t, "RS256")
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := iss.Mint(
		map[string]any{"iss": "https://other.example", "jti": nil, "exp": exp, "scope": "read"},
		WithHeader("typ", "JWT"), WithHeader("kid", nil), WithHeader("crit", []string{}), WithAlg("PS256"),
	)
	if err != nil {
		t.Fatal(err)
	}
	hdr := decodeSegment(t, tok, 0)
	claims := decodeSegment(t, tok, 1)
	if hdr["typ"] != "JWT" || hdr["alg"] != "PS256" {
		t.Errorf("header = %v", hdr)
	}
	if _, ok := hdr["kid"]; ok {
		t.Error("kid not removed")
	}
	if c, ok := hdr["crit"].([]any); !ok || len(c) != 0 {
		t.Errorf("crit = %v", hdr["crit"])
	}
	if claims["iss"] != "https://other.example" || claims["scope"] != "read" || claims["exp"] != float64(exp.Unix()) {
		t.Errorf("claims = %v", claims)
	}
	if _, ok := claims["jti"]; ok {
		t.Error("jti not removed")
	}
	// The signature is PS256 under the RSA key (checked directly: crit
	// makes strict JWS verifiers refuse the token, as they should).
	parts := strings.Split(tok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := iss.PrivateKey().Public().(*rsa.PublicKey)
	if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, nil); err != nil {
		t.Fatalf("PS256 signature does not verify: %v", err)
	}
}

func TestMintHeaderAlgOverrideKeepsSigningAlg(t *testing.T) {
	iss := newIssuer(t, "ES256")
	tok, err := iss.Mint(nil, WithHeader("alg", "none"))
	if err != nil {
		t.Fatal(err)
	}
	if hdr := decodeSegment(t, tok, 0); hdr["alg"] != "none" {
		t.Fatalf("alg = %v", hdr["alg"])
	}
	if parts := strings.Split(tok, "."); len(parts[2]) == 0 {
		t.Fatal("token is unsigned")
	}
}

func TestWithAlgRefusesAlgTheKeyCannotSign(t *testing.T) {
	iss := newIssuer(t, "ES256")
	for _, alg := range []string{"ES384", "RS256", "HS256", "none", "EdDSA"} {
		if _, err := iss.Mint(nil, WithAlg(alg)); !errors.Is(err, ErrUnsupportedAlg) {
			t.Errorf("Mint(WithAlg(%s)) error = %v, want ErrUnsupportedAlg", alg, err)
		}
	}
}

func TestJWKSHandler(t *testing.T) {
	iss := newIssuer(t, "EdDSA")
	srv := httptest.NewServer(iss.JWKSHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := jwk.ParseReader(resp.Body); err != nil {
		t.Fatalf("served JWKS does not parse: %v", err)
	}

	resp2, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST status = %d", resp2.StatusCode)
	}
}

func TestConcurrentMint(t *testing.T) {
	iss := newIssuer(t, "ES256")
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			_, err := iss.Mint(map[string]any{"sub": "x"})
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
