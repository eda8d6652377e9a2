package httpapi

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseWhen(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Time
		err      string
	}{
		{name: "ok/RFC 3339 in UTC", in: "2026-01-02T15:04:05Z", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{name: "ok/RFC 3339 with an offset", in: "2026-01-02T15:04:05+02:00", want: time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC)},
		{name: "ok/RFC 3339 with fractions", in: "2026-01-02T15:04:05.5Z", want: time.Date(2026, 1, 2, 15, 4, 5, 5e8, time.UTC)},
		{name: "ok/a day is its first instant in UTC", in: "2026-01-02", want: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{name: "fail/month 13", in: "2026-13-01", err: `"2026-13-01" is not a date`},
		{name: "fail/day first", in: "02/01/2026", err: "give RFC 3339"},
		{name: "fail/no zone", in: "2026-01-02T15:04:05", err: "YYYY-MM-DD"},
		{name: "fail/empty", in: "", err: `"" is not a date`},
		{name: "fail/too long", in: strings.Repeat("2", 100), err: "100 bytes"},
		{name: "fail/unix seconds", in: "1767225600", err: "is not a date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseWhen(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseWhen(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ParseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"2026-01-02T15:04:05Z", "2026-01-02", "2026-13-01", "9999-12-31T23:59:59.999999999-23:59", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseWhen(s)
		if err != nil {
			if !utf8.ValidString(err.Error()) || len(err.Error()) > 300 {
				t.Fatalf("error %q is not a short readable message", err)
			}
			return
		}
		if len(s) > maxWhenLen {
			t.Fatalf("ParseWhen accepted %d bytes", len(s))
		}
		if again, err := ParseWhen(got.Format(time.RFC3339Nano)); err != nil || !again.Equal(got) {
			t.Fatalf("%q → %v does not read back: %v %v", s, got, again, err)
		}
	})
}
