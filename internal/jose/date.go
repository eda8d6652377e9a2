package jose

import (
	"errors"
	"math"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// MaxNumericDate is the latest NumericDate accepted, in seconds since the
// epoch: the last whole second whose Unix nanoseconds fit in an int64
// (2262-04-11), the unit the state store keeps times in.
const MaxNumericDate = math.MaxInt64 / int64(time.Second)

// ErrNumericDate is the error of a NumericDate that is not a JSON number
// from 0 to MaxNumericDate.
var ErrNumericDate = errors.New("not a NumericDate from 0 (1970) to 9223372036 (2262)")

// NumericDate reads a JSON number of seconds since the epoch (RFC 7519 §2),
// integer or not, that every part of the decision point can hold: from 0
// to MaxNumericDate, so that a time read from a token, proof or SET converts
// to Unix nanoseconds and back, and no time arithmetic on it wraps. A
// negative number, a larger one, or one that is no finite number at all
// (an exponent too large for a float64) is ErrNumericDate: the token, proof
// or SET is malformed, never clamped.
func NumericDate(v ast.Value) (time.Time, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return time.Time{}, ErrNumericDate
	}
	if i, ok := n.Int64(); ok {
		if i < 0 || i > MaxNumericDate {
			return time.Time{}, ErrNumericDate
		}
		return time.Unix(i, 0).UTC(), nil
	}
	f, ok := n.Float64()
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > float64(MaxNumericDate) {
		return time.Time{}, ErrNumericDate
	}
	sec, frac := math.Modf(f)
	t := time.Unix(int64(sec), int64(frac*1e9)).UTC()
	if t.Unix() > MaxNumericDate {
		return time.Time{}, ErrNumericDate
	}
	return t, nil
}
