package httpapi

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// maxWhenLen bounds a date given to ParseWhen.
const maxWhenLen = 64

// ParseWhen reads a point in time as people write it for a revocation's
// cut-off: RFC 3339 (2026-01-02T15:04:05Z, with an offset or fractional
// seconds) or a calendar day YYYY-MM-DD, which is its first instant in UTC.
// The error says what was given and what is expected.
func ParseWhen(s string) (time.Time, error) {
	if len(s) > maxWhenLen {
		return time.Time{}, fmt.Errorf("a date of %d bytes is not a date: give RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD", len(s))
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1 || t.Year() > 9999 {
			return time.Time{}, fmt.Errorf("%s is out of range", strconv.Quote(s))
		}
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%s is not a date: give RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD", strconv.Quote(s))
}

// when is a date member of an admin request body, read by ParseWhen.
type when struct{ time.Time }

// whenError is the error of a date member that ParseWhen refuses.
type whenError struct{ err error }

func (e *whenError) Error() string { return e.err.Error() }

func (w *when) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return &whenError{errors.New("a date must be a JSON string: RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD")}
	}
	t, err := ParseWhen(s)
	if err != nil {
		return &whenError{err}
	}
	w.Time = t
	return nil
}
