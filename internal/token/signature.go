package token

import "github.com/tokenguard/pdp/internal/jose"

// verifySignature checks the signature of the compact JWS raw with key k
// under alg (J9: exact size, ECDSA R‖S with 0 < r, s < n, before any
// cryptography). k must fit alg (verifyKey.fits).
func verifySignature(k *verifyKey, alg, raw string, sig []byte) error {
	return jose.VerifySignature(jose.Key{Public: k.pub, ECOrder: k.ecOrder}, alg, raw, sig)
}
