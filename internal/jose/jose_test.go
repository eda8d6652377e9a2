package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestVerifySignature(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signing := "eyJhbGciOiJFUzI1NiJ9.e30"
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ec, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	good := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	der, err := ecdsa.SignASN1(rand.Reader, ec, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	order := ECOrder(&ec.PublicKey)
	ecKey := Key{Public: &ec.PublicKey, ECOrder: order}
	raw := func(sig []byte) string { return signing + "." + B64.EncodeToString(sig) }
	tests := []struct {
		name string
		key  Key
		alg  string
		sig  []byte
		want error // nil: verifies; errAny: any error
	}{
		{"ok/ES256 R||S", ecKey, "ES256", good, nil},
		{"fail/DER encoding", ecKey, "ES256", der, ErrSignatureLength},
		{"fail/all-zero R||S", ecKey, "ES256", make([]byte, 64), ErrSignatureRange},
		{"fail/r equal to the order", ecKey, "ES256", append(append([]byte{}, order...), good[32:]...), ErrSignatureRange},
		{"fail/one bit flipped", ecKey, "ES256", func() []byte { b := append([]byte{}, good...); b[10] ^= 1; return b }(), errAny},
		{"fail/EC key without its order", Key{Public: &ec.PublicKey}, "ES256", good, errAny},
		{"fail/Ed25519 signature of the wrong size", Key{Public: edPriv.Public()}, "EdDSA", make([]byte, 63), ErrSignatureLength},
		{"fail/unsupported algorithm", ecKey, "HS256", good, errAny},
		{"fail/unknown key type", Key{Public: crypto.PublicKey("secret")}, "ES256", good, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.key, tt.alg, raw(tt.sig), tt.sig)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.want == errAny && err == nil, tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestKeyFits(t *testing.T) {
	tests := []struct {
		alg, kty, crv string
		want          bool
	}{
		{"RS256", "RSA", "", true}, {"PS512", "RSA", "", true}, {"ES256", "EC", "P-256", true},
		{"ES256", "EC", "P-384", false}, {"ES512", "EC", "P-521", true}, {"EdDSA", "OKP", "Ed25519", true},
		{"RS256", "EC", "P-256", false}, {"HS256", "oct", "", false}, {"none", "", "", false},
	}
	for _, tt := range tests {
		if got := KeyFits(tt.alg, tt.kty, tt.crv); got != tt.want {
			t.Errorf("KeyFits(%s, %s, %s) = %v", tt.alg, tt.kty, tt.crv, got)
		}
	}
}

func TestCompactAlphabetAndStrictBase64(t *testing.T) {
	for _, c := range []byte("AZaz09-_.") {
		if !IsCompactChar(c) {
			t.Errorf("%q refused", c)
		}
	}
	for _, c := range []byte("=+/ \n\x00\xff") {
		if IsCompactChar(c) {
			t.Errorf("%q accepted", c)
		}
	}
	if _, err := B64.DecodeString("AB"); err == nil { // trailing bits set
		t.Error("non-canonical base64url accepted")
	}
	if _, err := B64.DecodeString("AA=="); err == nil {
		t.Error("padded base64url accepted")
	}
}
