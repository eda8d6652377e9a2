package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. In the config file and the environment it is
// a plain integer or a number with a unit: B, KiB, MiB, GiB, TiB (powers of
// 1024) or kB, MB, GB, TB (powers of 1000), e.g. 64MiB or "1 GiB".
type ByteSize int64

// maxByteSizeText bounds the text ParseByteSize reads.
const maxByteSizeText = 32

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// ParseByteSize reads a byte size: decimal digits, optionally followed by a
// unit (see ByteSize; units are case-insensitive, one space may separate
// them). Negative, fractional and overflowing sizes are errors.
func ParseByteSize(s string) (int64, error) {
	if len(s) > maxByteSizeText {
		return 0, fmt.Errorf("byte size is longer than %d characters", maxByteSizeText)
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("byte size %q: want digits and an optional unit (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: too large", s)
	}
	unit := strings.TrimPrefix(s[i:], " ")
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok || (unit == "" && s[i:] != "") {
		return 0, fmt.Errorf("byte size %q: unknown unit %q (B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s, unit)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("byte size %q: too large", s)
	}
	return n * mult, nil
}

// UnmarshalText reads a ByteSize from the config file or the environment.
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = ByteSize(n)
	return nil
}

// String writes b in the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	n := int64(b)
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// checkByteRange says whether b lies in [lo, hi], naming both in its error.
func checkByteRange(b ByteSize, lo, hi ByteSize) error {
	if b < lo || b > hi {
		return fmt.Errorf("must be between %s and %s", lo, hi)
	}
	return nil
}
