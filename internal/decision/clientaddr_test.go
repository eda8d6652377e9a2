package decision

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseClientAddr checks the one client-address parser: it never
// panics, refuses with ErrClientAddr, bounds what it reads, and what it
// accepts is a plain address (no zone, IPv4 unmapped) that reads back as
// itself.
func FuzzParseClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7:5", "[::1]:5", "::ffff:1.2.3.4", "[::ffff:1.2.3.4]:443",
		"fe80::1%eth0", "[fe80::1%eth0]:5", "1.2.3.4:0", "1.2.3.4:65536", "host:80", "[1.2.3.4]", "[::1", "::1]:5", "", " 1.2.3.4 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseClientAddr(s)
		if err != nil {
			if !errors.Is(err, ErrClientAddr) || a.IsValid() {
				t.Fatalf("%q: %v, %v; want ErrClientAddr and no address", s, a, err)
			}
			return
		}
		if len(s) > maxClientAddr || !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("%q accepted as %v", s, a)
		}
		if b, err := ParseClientAddr(a.String()); err != nil || b != a {
			t.Fatalf("%q: %v reads back as %v, %v", s, a, b, err)
		}
		if strings.Contains(s, "%") {
			t.Fatalf("%q with a zone accepted", s)
		}
	})
}
