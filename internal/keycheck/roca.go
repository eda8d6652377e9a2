package keycheck

import "math/big"

// The ROCA test (Nemec et al., "The Return of Coppersmith's Attack",
// CCS 2017; CVE-2017-15361). The vulnerable library made RSA primes of the
// form k·M + (65537^a mod M), M a primorial, so a modulus N = p·q is
// congruent to a power of 65537 modulo every prime that divides M. The
// published test checks that for the small primes below: N mod r lies in
// the subgroup of (Z/rZ)* that 65537 generates, for every r. A random
// modulus passes all of them with negligible probability.
var rocaPrimes = []uint{
	3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67,
	71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139,
	149, 151, 157, 163, 167,
}

// rocaSubgroups[i] has bit j set when j is a power of 65537 modulo
// rocaPrimes[i].
var rocaSubgroups = func() [][3]uint64 {
	out := make([][3]uint64, len(rocaPrimes))
	for i, r := range rocaPrimes {
		g := 65537 % r
		for x := uint(1); ; {
			out[i][x/64] |= 1 << (x % 64)
			if x = x * g % r; x == 1 {
				break
			}
		}
	}
	return out
}()

// HasROCAFingerprint reports whether the RSA modulus n has the structure of
// the keys that CVE-2017-15361 lets anyone factor.
func HasROCAFingerprint(n *big.Int) bool {
	if n == nil || n.Sign() <= 0 {
		return false
	}
	var m big.Int
	for i, r := range rocaPrimes {
		x := m.Mod(n, m.SetUint64(uint64(r))).Uint64()
		if rocaSubgroups[i][x/64]&(1<<(x%64)) == 0 {
			return false
		}
	}
	return true
}
