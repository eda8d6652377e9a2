package keycheck_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/tokenguard/pdp/internal/keycheck"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// rocaModulus is the modulus of the Wycheproof key with the ROCA weakness.
func rocaModulus(t *testing.T) *big.Int {
	t.Helper()
	return keychecktest.ROCA().N
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func edKey(t *testing.T, hexKey string) ed25519.PublicKey {
	t.Helper()
	b, err := hex.DecodeString(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	n := testRSA(t).N
	p256 := ecKey(t, elliptic.P256())
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: p256.X, Y: new(big.Int).Add(p256.Y, big.NewInt(1))}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    any
		reason string // "" for accepted
	}{
		{"ok/RSA 2048 bits, e 65537", &rsa.PublicKey{N: n, E: 65537}, ""},
		{"ok/RSA e 3", &rsa.PublicKey{N: n, E: 3}, ""},
		{"ok/RSA e 2^31-1", &rsa.PublicKey{N: n, E: 1<<31 - 1}, ""},
		{"fail/RSA e 1", &rsa.PublicKey{N: n, E: 1}, "exponent 1"},
		{"fail/RSA e 0", &rsa.PublicKey{N: n, E: 0}, "exponent 0"},
		{"fail/RSA e negative", &rsa.PublicKey{N: n, E: -65537}, "exponent"},
		{"fail/RSA e even", &rsa.PublicKey{N: n, E: 65538}, "exponent 65538"},
		{"fail/RSA e 2^31+1", &rsa.PublicKey{N: n, E: 1<<31 + 1}, "exponent"},
		{"fail/RSA 1024 bits", &rsa.PublicKey{N: new(big.Int).Rsh(n, 1024), E: 65537}, "1024 bits"},
		{"fail/RSA 2047 bits", &rsa.PublicKey{N: new(big.Int).Rsh(n, 1), E: 65537}, "2047 bits"},
		{"fail/RSA 8200 bits", &rsa.PublicKey{N: new(big.Int).Lsh(n, 6152), E: 65537}, "8200 bits"},
		{"fail/RSA even modulus", &rsa.PublicKey{N: new(big.Int).Add(n, big.NewInt(1)), E: 65537}, "even"},
		{"fail/RSA no modulus", &rsa.PublicKey{E: 65537}, "modulus"},
		{"fail/RSA ROCA fingerprint (Wycheproof rejectsKeyWithRocaVulnerability)", &rsa.PublicKey{N: rocaModulus(t), E: 65537}, "ROCA"},
		{"ok/EC P-256", p256, ""},
		{"ok/EC P-384", ecKey(t, elliptic.P384()), ""},
		{"ok/EC P-521", ecKey(t, elliptic.P521()), ""},
		{"fail/EC point off the curve", offCurve, "not on the P-256 curve"},
		{"fail/EC point at infinity", &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int), Y: new(big.Int)}, "not on"},
		{"fail/EC coordinate not reduced", &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).Add(p256.X, elliptic.P256().Params().P), Y: p256.Y}, "not on"},
		{"fail/EC P-224", &p224.PublicKey, "P-224"},
		{"fail/EC no point", &ecdsa.PublicKey{Curve: elliptic.P256()}, "without a point"},
		{"ok/Ed25519", edPub, ""},
		{"fail/Ed25519 31 bytes", edPub[:31], "31 bytes"},
		{"fail/Ed25519 identity", edKey(t, "0100000000000000000000000000000000000000000000000000000000000000"), "small order"},
		{"fail/Ed25519 identity with sign bit", edKey(t, "0100000000000000000000000000000000000000000000000000000000000080"), "non-canonical"},
		{"fail/Ed25519 order 2", edKey(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), "small order"},
		{"fail/Ed25519 order 4", edKey(t, "0000000000000000000000000000000000000000000000000000000000000000"), "small order"},
		{"fail/Ed25519 order 4 with sign bit", edKey(t, "0000000000000000000000000000000000000000000000000000000000000080"), "small order"},
		{"fail/Ed25519 order 8", edKey(t, "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "small order"},
		{"fail/Ed25519 order 8 other", edKey(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "small order"},
		{"fail/Ed25519 y = p (non-canonical 0)", edKey(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), "non-canonical"},
		{"fail/Ed25519 y = p+1 (non-canonical 1)", edKey(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), "non-canonical"},
		{"fail/Ed25519 not on the curve", edKey(t, "0200000000000000000000000000000000000000000000000000000000000000"), "not a point"},
		{"fail/nil", nil, "no key"},
		{"fail/symmetric key", []byte("secret"), "not a supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := keycheck.Check(tt.key)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check: %v, want accepted", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted the key, want refused (%s)", tt.reason)
			}
			if !errors.Is(err, keycheck.ErrRefused) {
				t.Errorf("error %v does not wrap ErrRefused", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not name %q", err, tt.reason)
			}
		})
	}
}

// TestROCAFingerprint: products of numbers of the vulnerable form
// k·M + 65537^a mod M are flagged; random odd moduli are not.
func TestROCAFingerprint(t *testing.T) {
	primes := []int64{3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67,
		71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167}
	m := big.NewInt(1)
	for _, p := range primes {
		m.Mul(m, big.NewInt(p))
	}
	rocaLike := func(a int64) *big.Int {
		k, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 900))
		if err != nil {
			t.Fatal(err)
		}
		x := new(big.Int).Exp(big.NewInt(65537), big.NewInt(a), m)
		return x.Add(x, k.Mul(k, m))
	}
	for a := int64(1); a < 20; a++ {
		n := new(big.Int).Mul(rocaLike(a), rocaLike(a*7+3))
		if !keycheck.HasROCAFingerprint(n) {
			t.Fatalf("modulus of the vulnerable form (a=%d) not flagged", a)
		}
	}
	if !keycheck.HasROCAFingerprint(rocaModulus(t)) {
		t.Fatal("the Wycheproof ROCA key is not flagged")
	}
	flagged := 0
	for range 2000 {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 2048))
		if err != nil {
			t.Fatal(err)
		}
		if keycheck.HasROCAFingerprint(n.SetBit(n, 0, 1)) {
			flagged++
		}
	}
	if flagged != 0 {
		t.Fatalf("%d random moduli flagged", flagged)
	}
	if keycheck.HasROCAFingerprint(testRSA(t).N) {
		t.Fatal("a freshly generated key is flagged")
	}
}
