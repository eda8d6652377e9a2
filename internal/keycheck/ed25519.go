package keycheck

import (
	"errors"
	"math/big"
)

// Edwards25519 arithmetic, affine and slow, for checking a public key once
// when it is loaded: -x² + y² = 1 + d·x²·y² over GF(2^255 - 19).
var (
	edP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	// edD is -121665/121666 mod p.
	edD = func() *big.Int {
		inv := new(big.Int).ModInverse(big.NewInt(121666), edP)
		d := new(big.Int).Mul(big.NewInt(-121665), inv)
		return d.Mod(d, edP)
	}()
)

type edPoint struct{ x, y *big.Int }

// decodeEdwards decodes a point as RFC 8032 §5.1.3 does, refusing
// non-canonical encodings (y ≥ p, or x = 0 with the sign bit set) and
// values that are not on the curve.
func decodeEdwards(b []byte) (edPoint, error) {
	if len(b) != 32 {
		return edPoint{}, errors.New("not 32 bytes")
	}
	le := make([]byte, 32)
	for i := range 32 {
		le[31-i] = b[i]
	}
	sign := le[0] >> 7
	le[0] &= 0x7f
	y := new(big.Int).SetBytes(le)
	if y.Cmp(edP) >= 0 {
		return edPoint{}, errors.New("non-canonical encoding")
	}
	yy := new(big.Int).Mul(y, y)
	u := new(big.Int).Sub(yy, big.NewInt(1))
	u.Mod(u, edP)
	v := new(big.Int).Mul(edD, yy)
	v.Add(v, big.NewInt(1)).Mod(v, edP)
	vInv := new(big.Int).ModInverse(v, edP)
	if vInv == nil {
		return edPoint{}, errors.New("not a point on the curve")
	}
	xx := u.Mul(u, vInv)
	xx.Mod(xx, edP)
	x := new(big.Int).ModSqrt(xx, edP)
	if x == nil {
		return edPoint{}, errors.New("not a point on the curve")
	}
	if x.Sign() == 0 && sign == 1 {
		return edPoint{}, errors.New("non-canonical encoding")
	}
	if uint8(x.Bit(0)) != sign {
		x.Sub(edP, x)
	}
	return edPoint{x: x, y: y}, nil
}

// add is the complete twisted Edwards addition (a = -1).
func (p edPoint) add(q edPoint) edPoint {
	x1y2 := new(big.Int).Mul(p.x, q.y)
	y1x2 := new(big.Int).Mul(p.y, q.x)
	y1y2 := new(big.Int).Mul(p.y, q.y)
	x1x2 := new(big.Int).Mul(p.x, q.x)
	t := new(big.Int).Mul(x1x2, y1y2)
	t.Mul(t, edD).Mod(t, edP)
	one := big.NewInt(1)
	dx := new(big.Int).Add(one, t)
	dy := new(big.Int).Sub(one, t)
	dx.Mod(dx, edP).ModInverse(dx, edP)
	dy.Mod(dy, edP).ModInverse(dy, edP)
	x := x1y2.Add(x1y2, y1x2)
	x.Mul(x, dx).Mod(x, edP)
	y := y1y2.Add(y1y2, x1x2)
	y.Mul(y, dy).Mod(y, edP)
	return edPoint{x: x, y: y}
}

// smallOrder reports whether 8·p is the neutral element (0, 1): p lies in
// the torsion subgroup.
func (p edPoint) smallOrder() bool {
	q := p.add(p)
	q = q.add(q)
	q = q.add(q)
	return q.x.Sign() == 0 && q.y.Cmp(big.NewInt(1)) == 0
}
