package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpendDPoPJTI(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	exp := t0.Add(time.Minute)

	spend := func(key string, exp time.Time) bool {
		t.Helper()
		fresh, err := s.SpendDPoPJTI(ctx, key, exp)
		if err != nil {
			t.Fatalf("SpendDPoPJTI(%q): %v", key, err)
		}
		return fresh
	}
	if !spend("k1", exp) {
		t.Fatal("first spend not fresh")
	}
	if spend("k1", exp) {
		t.Fatal("second spend fresh: replay not detected")
	}
	if spend("k1", exp.Add(time.Hour)) {
		t.Fatal("replay with another exp not detected")
	}
	if !spend("k2", exp) {
		t.Fatal("another key not fresh")
	}
	c.Advance(time.Minute)
	if !spend("k1", c.Now().Add(time.Minute)) {
		t.Fatal("key not fresh again after its expiry")
	}
	if n := ttlEntries(t, s); n != 2 {
		t.Errorf("%d TTL entries, want 2", n)
	}
}

func TestSpendDPoPJTIInvalid(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newClock())
	for name, tt := range map[string]struct {
		key string
		exp time.Time
	}{
		"fail/empty key":          {"", t0.Add(time.Minute)},
		"fail/key too long":       {strings.Repeat("k", MaxKeyLen+1), t0.Add(time.Minute)},
		"fail/expiry in the past": {"k", t0.Add(-time.Second)},
		"fail/no expiry":          {"k", time.Time{}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.SpendDPoPJTI(ctx, tt.key, tt.exp); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// Racing goroutines spend the same keys: each key is fresh exactly once.
func TestSpendDPoPJTIExactlyOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, newClock())
	const keys, racers = 50, 8
	var fresh [keys]atomic.Int32
	var wg sync.WaitGroup
	for g := range racers {
		wg.Go(func() {
			for i := range keys {
				k := (i + g*7) % keys
				ok, err := s.SpendDPoPJTI(ctx, fmt.Sprintf("key-%d", k), t0.Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					fresh[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range fresh {
		if n := fresh[k].Load(); n != 1 {
			t.Errorf("key-%d was fresh %d times, want exactly once", k, n)
		}
	}
}

// A SET remembered before a restart is still remembered after it: the
// replay window of security event tokens is on disk, not in memory.
func TestRememberSETSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	dir := t.TempDir()
	s, err := OpenBolt(dir, BoltOptions{Now: c.Now, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RememberSET(ctx, "set-before-restart", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestIn(t, dir, c)
	if seen, err := s2.SETSeen(ctx, "set-before-restart"); !seen || err != nil {
		t.Fatalf("SETSeen after restart = %v, %v; want true", seen, err)
	}
	c.Advance(time.Hour)
	if n, err := s2.Sweep(ctx, c.Now()); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want the expired SET swept", n, err)
	}
	if st, _ := s2.Stats(ctx); st.SETJTIs != 0 {
		t.Errorf("SETJTIs after the sweep = %d", st.SETJTIs)
	}
}

func TestDPoPJTISpentReadsWithoutSpending(t *testing.T) {
	c := newClock()
	testDPoPJTISpent(t, openTest(t, c), c)
}

// jtiReader is what testDPoPJTISpent needs of a store.
type jtiReader interface {
	SpendDPoPJTI(ctx context.Context, key string, exp time.Time) (bool, error)
	DPoPJTISpent(ctx context.Context, key string) (bool, error)
}

// testDPoPJTISpent: reading whether a jti was spent spends nothing, sees a
// spent one until it expires, and refuses a malformed key (every backend).
func testDPoPJTISpent(t *testing.T, s jtiReader, c *clock) {
	t.Helper()
	ctx := context.Background()
	spent := func(key string) bool {
		t.Helper()
		v, err := s.DPoPJTISpent(ctx, key)
		if err != nil {
			t.Fatalf("DPoPJTISpent(%q): %v", key, err)
		}
		return v
	}
	if spent("k1") || spent("k1") {
		t.Fatal("a key never spent reads as spent")
	}
	if fresh, err := s.SpendDPoPJTI(ctx, "k1", t0.Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("spend after the read-only checks: fresh %v, %v: the check spent the key", fresh, err)
	}
	if !spent("k1") {
		t.Fatal("a spent key reads as not spent")
	}
	c.Advance(time.Minute)
	if spent("k1") {
		t.Fatal("an expired key reads as spent")
	}
	if _, err := s.DPoPJTISpent(ctx, ""); err == nil {
		t.Fatal("an empty key is accepted")
	}
}
