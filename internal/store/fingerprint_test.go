package store

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRecordFingerprint(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	exp := t0.Add(time.Hour)

	if _, ok, err := s.LastSeen(ctx, "h"); err != nil || ok {
		t.Fatalf("LastSeen before any record = %v, %v; want none", ok, err)
	}
	if err := s.RecordFingerprint(ctx, "h", Sighting{IP: netip.MustParseAddr("192.0.2.17"), UserAgent: "curl/8", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if err := s.RecordFingerprint(ctx, "h", Sighting{IP: netip.MustParseAddr("2001:db8:aa:bbcc::1"), UserAgent: "firefox", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	fp, ok, err := s.LastSeen(ctx, "h")
	if err != nil || !ok {
		t.Fatalf("LastSeen = %v, %v", ok, err)
	}
	want := Fingerprint{
		FirstSeen: t0, LastSeen: t0.Add(time.Minute),
		IP: "2001:db8:aa:bbcc::1", Prefix: "2001:db8:aa:bb00::/56",
		UAHash: HashUserAgent("firefox"), Count: 2, ExpiresAt: exp,
	}
	if fp != want {
		t.Fatalf("fingerprint =\n %+v\nwant\n %+v", fp, want)
	}

	t.Run("ok/an overtaken sighting counts but keeps the latest client", func(t *testing.T) {
		err := s.RecordFingerprint(ctx, "h", Sighting{At: t0.Add(-time.Minute), IP: netip.MustParseAddr("198.51.100.1"), UserAgent: "old", ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		fp, _, _ := s.LastSeen(ctx, "h")
		if fp.Count != 3 || !fp.FirstSeen.Equal(t0.Add(-time.Minute)) || fp.IP != want.IP || fp.UAHash != want.UAHash {
			t.Errorf("fingerprint = %+v", fp)
		}
	})

	t.Run("ok/ignored once the token expired, then starts afresh", func(t *testing.T) {
		c.Advance(time.Hour)
		if _, ok, _ := s.LastSeen(ctx, "h"); ok {
			t.Fatal("expired fingerprint returned")
		}
		if err := s.RecordFingerprint(ctx, "h", Sighting{ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		fp, ok, _ := s.LastSeen(ctx, "h")
		if !ok || fp.Count != 1 || fp.IP != "" || fp.Prefix != "" {
			t.Errorf("fresh fingerprint = %+v", fp)
		}
		if n := ttlEntries(t, s); n != 1 {
			t.Errorf("%d TTL entries, want 1", n)
		}
	})
}

func TestFingerprintPrefix(t *testing.T) {
	tests := []struct {
		name       string
		v4, v6     int
		ip         string
		wantIP     string
		wantPrefix string
	}{
		{"ok/ipv4 default /24", 0, 0, "203.0.113.200", "203.0.113.200", "203.0.113.0/24"},
		{"ok/ipv6 default /56", 0, 0, "2001:db8:1:2ff::9", "2001:db8:1:2ff::9", "2001:db8:1:200::/56"},
		{"ok/ipv4-mapped ipv6 counts as ipv4", 0, 0, "::ffff:203.0.113.200", "203.0.113.200", "203.0.113.0/24"},
		{"ok/zone dropped", 0, 0, "fe80::1%eth0", "fe80::1", "fe80::/56"},
		{"ok/configured /16", 16, 0, "203.0.113.200", "203.0.113.200", "203.0.0.0/16"},
		{"ok/configured /64", 0, 64, "2001:db8:1:2ff:1::9", "2001:db8:1:2ff:1::9", "2001:db8:1:2ff::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s, err := OpenBolt(t.TempDir(), BoltOptions{Now: c.Now, PrefixV4Bits: tt.v4, PrefixV6Bits: tt.v6})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.RecordFingerprint(ctx, "h", Sighting{IP: netip.MustParseAddr(tt.ip), ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			fp, _, _ := s.LastSeen(ctx, "h")
			if fp.IP != tt.wantIP || fp.Prefix != tt.wantPrefix {
				t.Errorf("ip, prefix = %q, %q; want %q, %q", fp.IP, fp.Prefix, tt.wantIP, tt.wantPrefix)
			}
		})
	}
}

func TestHashUserAgent(t *testing.T) {
	// The value Rego's crypto.sha256("") returns.
	if got := HashUserAgent(""); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("HashUserAgent(\"\") = %s", got)
	}
}

func TestRecordFingerprintInvalid(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newClock())
	exp := t0.Add(time.Hour)
	tests := map[string]struct {
		hash string
		s    Sighting
	}{
		"fail/empty hash":     {"", Sighting{ExpiresAt: exp}},
		"fail/hash too long":  {strings.Repeat("h", MaxKeyLen+1), Sighting{ExpiresAt: exp}},
		"fail/no expiry":      {"h", Sighting{}},
		"fail/expiry in past": {"h", Sighting{ExpiresAt: t0.Add(-time.Second)}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if err := s.RecordFingerprint(ctx, tt.hash, tt.s); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, _, err := s.LastSeen(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("LastSeen(\"\"): err = %v, want ErrInvalid", err)
	}
}

func TestRecordFingerprints(t *testing.T) {
	ctx := context.Background()
	exp := t0.Add(time.Hour)
	t.Run("ok/a bulk load reads back like single sightings", func(t *testing.T) {
		s := openTest(t, newClock())
		err := s.RecordFingerprints(ctx, []TokenSighting{
			{TokenHash: "b", Sighting: Sighting{IP: netip.MustParseAddr("192.0.2.17"), UserAgent: "curl/8", ExpiresAt: exp}},
			{TokenHash: "a", Sighting: Sighting{At: t0.Add(-time.Minute), UserAgent: "old", ExpiresAt: exp}},
			{TokenHash: "a", Sighting: Sighting{IP: netip.MustParseAddr("198.51.100.9"), UserAgent: "new", ExpiresAt: exp}},
		})
		if err != nil {
			t.Fatal(err)
		}
		fp, ok, err := s.LastSeen(ctx, "a")
		if err != nil || !ok {
			t.Fatalf("LastSeen(a) = %v, %v", ok, err)
		}
		if fp.Count != 2 || !fp.FirstSeen.Equal(t0.Add(-time.Minute)) || fp.IP != "198.51.100.9" || fp.UAHash != HashUserAgent("new") {
			t.Errorf("fingerprint of a = %+v", fp)
		}
		if fp, ok, _ := s.LastSeen(ctx, "b"); !ok || fp.Prefix != "192.0.2.0/24" || fp.Count != 1 {
			t.Errorf("fingerprint of b = %+v, %v", fp, ok)
		}
		if st, _ := s.Stats(ctx); st.Fingerprints != 2 {
			t.Errorf("Stats().Fingerprints = %d, want 2", st.Fingerprints)
		}
	})
	t.Run("fail/one invalid sighting stores none", func(t *testing.T) {
		s := openTest(t, newClock())
		err := s.RecordFingerprints(ctx, []TokenSighting{
			{TokenHash: "a", Sighting: Sighting{ExpiresAt: exp}},
			{TokenHash: "b", Sighting: Sighting{ExpiresAt: t0.Add(-time.Second)}},
		})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "[1]") {
			t.Fatalf("err = %v, want ErrInvalid naming [1]", err)
		}
		if _, ok, _ := s.LastSeen(ctx, "a"); ok {
			t.Error("the valid sighting was stored")
		}
	})
	t.Run("fail/more than MaxImport sightings", func(t *testing.T) {
		s := openTest(t, newClock())
		if err := s.RecordFingerprints(ctx, make([]TokenSighting, MaxImport+1)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
	})
}
