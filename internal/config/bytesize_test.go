package config

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		err  string
	}{
		{"ok/plain integer", "1048576", 1 << 20, ""},
		{"ok/zero", "0", 0, ""},
		{"ok/bytes", "512B", 512, ""},
		{"ok/mebibytes", "64MiB", 64 << 20, ""},
		{"ok/gibibytes with a space", "1 GiB", 1 << 30, ""},
		{"ok/unit in any case", "2gib", 2 << 30, ""},
		{"ok/decimal megabytes", "5MB", 5_000_000, ""},
		{"ok/tebibytes", "16TiB", 16 << 40, ""},
		{"fail/empty", "", 0, "want digits"},
		{"fail/negative", "-1MiB", 0, "want digits"},
		{"fail/fraction", "1.5GiB", 0, "unknown unit"},
		{"fail/unknown unit", "64MiBs", 0, "unknown unit"},
		{"fail/trailing space", "64 ", 0, "unknown unit"},
		{"fail/two spaces", "64  MiB", 0, "unknown unit"},
		{"fail/overflow in digits", "99999999999999999999", 0, "too large"},
		{"fail/overflow with the unit", "9000000TiB", 0, "too large"},
		{"fail/too long", strings.Repeat("1", 40), 0, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseByteSize(%q) = %d, %v; want error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1 GiB", "0", "1048576", "5MB", "-1", "1.5GiB", "9000000TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, n)
		}
		back, err := ParseByteSize(ByteSize(n).String())
		if err != nil || back != n {
			t.Fatalf("%q: %d written as %q reads back as %d, %v", s, n, ByteSize(n).String(), back, err)
		}
	})
}
