package jose

import (
	"errors"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestNumericDate(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    ast.Value
		want int64 // Unix nanoseconds; -1: ErrNumericDate
	}{
		{"ok/the epoch", ast.Number("0"), 0},
		{"ok/negative zero", ast.Number("-0"), 0},
		{"ok/a fraction", ast.Number("1767225600.25"), 1767225600250000000},
		{"ok/an exponent", ast.Number("1.7672256e9"), 1767225600e9},
		{"ok/the last second of 2262", ast.Number("9223372036"), 9223372036e9},
		{"ok/a vanishing exponent", ast.Number("1e-400"), 0},
		{"fail/negative", ast.Number("-1"), -1},
		{"fail/negative with a fraction", ast.Number("-0.5"), -1},
		{"fail/year one", ast.Number("-62135596800"), -1},
		{"fail/past 2262", ast.Number("9223372037"), -1},
		{"fail/past 2262 by a fraction", ast.Number("9223372036.5"), -1},
		{"fail/year 9999", ast.Number("253402300799"), -1},
		{"fail/beyond int64", ast.Number("18446744073709551616"), -1},
		{"fail/a huge exponent", ast.Number("1e400"), -1},
		{"fail/a string", ast.String("1767225600"), -1},
		{"fail/null", ast.Null{}, -1},
		{"fail/a boolean", ast.Boolean(true), -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NumericDate(tt.v)
			if tt.want < 0 {
				if !errors.Is(err, ErrNumericDate) {
					t.Fatalf("NumericDate(%v) = %s, %v; want ErrNumericDate", tt.v, got, err)
				}
				return
			}
			if err != nil || got.UnixNano() != tt.want || got.Location() != time.UTC {
				t.Fatalf("NumericDate(%v) = %s (%d), %v; want %d", tt.v, got, got.UnixNano(), err, tt.want)
			}
		})
	}
}
