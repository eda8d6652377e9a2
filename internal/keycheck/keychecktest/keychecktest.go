// Package keychecktest provides keys that the key check must refuse, for
// the tests of every key loader: the Wycheproof RSA key with the ROCA
// weakness (its private key is published, so tests can sign with it) and
// hand-made keys that no library would generate.
package keychecktest

import (
	"crypto/rsa"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

//go:embed wycheproof/json_web_key_roca.json
var rocaVector []byte

// ROCAKID is the kid of the ROCA key in its Wycheproof vector.
const ROCAKID = "kid-rsa-roca-sign"

// ROCA returns the Wycheproof RSA key with the ROCA fingerprint
// (CVE-2017-15361), test "rejectsKeyWithRocaVulnerability".
func ROCA() *rsa.PrivateKey {
	var g struct {
		Private struct {
			Keys []map[string]string `json:"keys"`
		} `json:"private"`
	}
	if err := json.Unmarshal(rocaVector, &g); err != nil || len(g.Private.Keys) != 1 {
		panic(fmt.Sprintf("keychecktest: reading the ROCA vector: %v", err))
	}
	m := g.Private.Keys[0]
	num := func(name string) *big.Int {
		b, err := base64.RawURLEncoding.DecodeString(m[name])
		if err != nil {
			panic(fmt.Sprintf("keychecktest: ROCA vector member %s: %v", name, err))
		}
		return new(big.Int).SetBytes(b)
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: num("n"), E: int(num("e").Int64())},
		D:         num("d"),
		Primes:    []*big.Int{num("p"), num("q")},
	}
	if err := k.Validate(); err != nil {
		panic(fmt.Sprintf("keychecktest: ROCA key: %v", err))
	}
	k.Precompute()
	return k
}

// RSAJWK is the public JWK of an RSA key with modulus n and exponent e,
// whatever they are (e = 1 included), with kid and alg when not empty.
func RSAJWK(n *big.Int, e int, kid, alg string) map[string]any {
	eb := big.NewInt(int64(e)).Bytes()
	k := map[string]any{
		"kty": "RSA",
		"n":   base64.RawURLEncoding.EncodeToString(n.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(eb),
	}
	if kid != "" {
		k["kid"] = kid
	}
	if alg != "" {
		k["alg"] = alg
	}
	return k
}

// SmallOrderEd25519 is the public JWK of an Ed25519 "key" of order 8:
// with it, anyone can make signatures that verify.
func SmallOrderEd25519(kid string) map[string]any {
	k := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "JuiVj8KyJ7BFw_SJ8u-Y8NXfrAXTxjM5sTgCiG1T_AU"}
	if kid != "" {
		k["kid"] = kid
	}
	return k
}
