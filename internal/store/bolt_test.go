package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is the start of every test clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(t0.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// openTest opens a store in a fresh temporary data dir, driven by c.
func openTest(t testing.TB, c *clock) *Bolt {
	t.Helper()
	return openTestIn(t, t.TempDir(), c)
}

func openTestIn(t testing.TB, dir string, c *clock) *Bolt {
	t.Helper()
	s, err := OpenBolt(dir, BoltOptions{Now: c.Now, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestOpenBolt(t *testing.T) {
	t.Run("ok/creates the data dir and the file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nested", "data")
		openTestIn(t, dir, newClock())
		fi, err := os.Stat(filepath.Join(dir, FileName))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("fail/second open of the same data dir fails fast with ErrLocked", func(t *testing.T) {
		dir := t.TempDir()
		openTestIn(t, dir, newClock())
		s, err := OpenBolt(dir, BoltOptions{LockTimeout: 50 * time.Millisecond})
		if err == nil {
			s.Close()
			t.Fatal("second OpenBolt succeeded")
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("err = %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use by another pdp process") {
			t.Errorf("err = %q, want it to name the data dir and say it is in use", err)
		}
	})

	t.Run("fail/invalid options", func(t *testing.T) {
		for name, o := range map[string]BoltOptions{
			"ipv4 prefix":  {PrefixV4Bits: 33},
			"ipv6 prefix":  {PrefixV6Bits: -1},
			"lock timeout": {LockTimeout: -time.Second},
		} {
			if _, err := OpenBolt(t.TempDir(), o); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
		if _, err := OpenBolt("", BoltOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty data dir: err = %v, want ErrInvalid", err)
		}
	})

	t.Run("ok/data survives close and reopen", func(t *testing.T) {
		dir, c := t.TempDir(), newClock()
		s, err := OpenBolt(dir, BoltOptions{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		r := mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "j1", ExpiresAt: t0.Add(time.Hour)})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTestIn(t, dir, c)
		got, err := s.GetRevocation(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != r {
			t.Errorf("after reopen got %+v, want %+v", got, r)
		}
	})
}

func TestClosedStoreFails(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, _, err := s.CheckRevocation(context.Background(), TokenRef{Issuer: iss, JTI: "x"}); err == nil {
		t.Error("CheckRevocation on a closed store succeeded")
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t, newClock())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckRevocation: err = %v, want context.Canceled", err)
	}
	if _, err := s.SpendDPoPJTI(ctx, "k", t0.Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Errorf("SpendDPoPJTI: err = %v, want context.Canceled", err)
	}
}

func TestStats(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newClock())
	exp := t0.Add(time.Hour)
	mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "a", ExpiresAt: exp})
	mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "b", ExpiresAt: exp})
	mustPut(t, s, Revocation{Kind: KindSubject, Issuer: iss, Value: "alice", ExpiresAt: exp})
	mustPut(t, s, Revocation{Kind: KindClient, Issuer: iss, Value: "app", ExpiresAt: exp})
	if err := s.RecordFingerprint(ctx, "h1", Sighting{ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SpendDPoPJTI(ctx, "p1", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFamily(ctx, Family{ID: "f1", Current: "r1", Issuer: iss, Subject: "alice", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateFamily(ctx, "f1", "r1", "r2"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Kind]int{KindJTI: 2, KindSession: 0, KindSubject: 1, KindClient: 1}
	for k, n := range want {
		if st.Revocations[k] != n {
			t.Errorf("revocations[%s] = %d, want %d", k, st.Revocations[k], n)
		}
	}
	if st.Fingerprints != 1 || st.DPoPJTIs != 1 || st.Families != 1 || st.FamilyTokens != 2 {
		t.Errorf("stats = %+v", st)
	}
	if st.SizeBytes <= 0 {
		t.Errorf("size = %d, want > 0", st.SizeBytes)
	}
}
