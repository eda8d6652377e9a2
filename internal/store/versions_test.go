package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Every write that can change an answer moves the version of that answer.
func TestVersionsMoveOnEveryWrite(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	rev := func(value string) Revocation {
		return Revocation{ID: "r-" + value, Kind: KindSubject, Issuer: "https://as.example", Value: value, ExpiresAt: c.Now().Add(time.Minute)}
	}
	sighting := Sighting{At: c.Now(), IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "t/1", ExpiresAt: c.Now().Add(time.Minute)}
	tests := []struct {
		name        string
		write       func(t *testing.T)
		revocations bool   // the revocation version moves
		fingerprint string // this token's fingerprint version moves
	}{
		{"PutRevocation", func(t *testing.T) { _, err := s.PutRevocation(ctx, rev("a")); check(t, err) }, true, ""},
		{"PutRevocations", func(t *testing.T) { _, err := s.PutRevocations(ctx, []Revocation{rev("b")}); check(t, err) }, true, ""},
		{"DeleteRevocation", func(t *testing.T) { check(t, s.DeleteRevocation(ctx, "r-a")) }, true, ""},
		{"RecordFingerprint", func(t *testing.T) { check(t, s.RecordFingerprint(ctx, "h1", sighting)) }, false, "h1"},
		{"RecordFingerprints", func(t *testing.T) {
			check(t, s.RecordFingerprints(ctx, []TokenSighting{{TokenHash: "h2", Sighting: sighting}}))
		}, false, "h2"},
		{"NoteSighting", func(t *testing.T) {
			release, err := s.NoteSighting("h3", sighting)
			check(t, err)
			t.Cleanup(release)
		}, false, "h3"},
		{"release of a noted sighting", func(t *testing.T) {
			release, err := s.NoteSighting("h4", sighting)
			check(t, err)
			fv, _ := s.FingerprintVersion("h4")
			release()
			if fv2, _ := s.FingerprintVersion("h4"); fv2 == fv {
				t.Error("release did not move the version")
			}
		}, false, "h4"},
		{"Sweep", func(t *testing.T) {
			c.Advance(2 * time.Minute)
			_, err := s.Sweep(ctx, c.Now())
			check(t, err)
		}, true, "h1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv, _ := s.RevocationVersion()
			fv, _ := s.FingerprintVersion(tt.fingerprint)
			tt.write(t)
			rv2, _ := s.RevocationVersion()
			fv2, _ := s.FingerprintVersion(tt.fingerprint)
			if (rv2 != rv) != tt.revocations {
				t.Errorf("revocation version %d -> %d, want a change: %v", rv, rv2, tt.revocations)
			}
			if tt.fingerprint != "" && fv2 == fv {
				t.Errorf("fingerprint version of %s did not move", tt.fingerprint)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.RevocationVersion(); ok {
		t.Error("a closed store vouches for its revocation answers")
	}
	if _, ok := s.FingerprintVersion("h1"); ok {
		t.Error("a closed store vouches for its fingerprint answers")
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A look-up that sees a revocation never goes with the version from before
// it: whoever reads the version, then looks up, and finds the new answer
// also finds a new version, while the write is still under way.
func TestVersionMovesBeforeAWriteIsVisible(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	ref := TokenRef{Issuer: "https://as.example", IssuedAt: c.Now().Add(-time.Minute)}
	for i := range 200 {
		ref.Subject = fmt.Sprintf("user-%d", i)
		before, _ := s.RevocationVersion()
		stop := make(chan struct{})
		stale := make(chan bool, 1)
		go func() {
			for {
				select {
				case <-stop:
					stale <- false
					return
				default:
				}
				v, _ := s.RevocationVersion()
				if _, revoked, err := s.CheckRevocation(ctx, ref); err == nil && revoked && v == before {
					stale <- true
					return
				}
			}
		}()
		if _, err := s.PutRevocation(ctx, Revocation{Kind: KindSubject, Issuer: ref.Issuer, Value: ref.Subject, ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		close(stop)
		if <-stale {
			t.Fatalf("write %d: a look-up saw the revocation under the version from before it", i)
		}
	}
}
