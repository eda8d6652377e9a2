package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ttlEntries counts the TTL index entries.
func ttlEntries(t testing.TB, s *Bolt) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTTL).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	short, long := t0.Add(time.Minute), t0.Add(time.Hour)

	for i, k := range kinds {
		mustPut(t, s, Revocation{ID: fmt.Sprintf("short-%d", i), Kind: k, Issuer: iss, Value: "s", ExpiresAt: short})
		mustPut(t, s, Revocation{ID: fmt.Sprintf("long-%d", i), Kind: k, Issuer: iss, Value: "l", ExpiresAt: long})
	}
	for _, exp := range []time.Time{short, long} {
		key := exp.Format(time.RFC3339)
		if err := s.RecordFingerprint(ctx, key, Sighting{ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SpendDPoPJTI(ctx, key, exp); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateFamily(ctx, Family{ID: key, Current: "rt-" + key, Issuer: iss, Subject: "a", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	// A revocation first stored with the short expiry, then extended: its
	// record must survive the sweep of the short expiry.
	mustPut(t, s, Revocation{ID: "extended", Kind: KindJTI, Issuer: iss, Value: "x", ExpiresAt: short})
	mustPut(t, s, Revocation{ID: "extended", Kind: KindJTI, Issuer: iss, Value: "x", ExpiresAt: long})

	if n, err := s.Sweep(ctx, c.Now()); err != nil || n != 0 {
		t.Fatalf("early Sweep = %d, %v; want nothing removed", n, err)
	}

	c.Advance(time.Minute)
	n, err := s.Sweep(ctx, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 + 4; n != want { // 4 revocations; fingerprint, replay key, family, family token
		t.Errorf("Sweep removed %d, want %d", n, want)
	}
	st, _ := s.Stats(ctx)
	for _, k := range kinds {
		want := 1
		if k == KindJTI {
			want = 2
		}
		if st.Revocations[k] != want {
			t.Errorf("revocations[%s] = %d after sweep, want %d", k, st.Revocations[k], want)
		}
	}
	if st.Fingerprints != 1 || st.DPoPJTIs != 1 || st.Families != 1 || st.FamilyTokens != 1 {
		t.Errorf("stats after sweep %+v", st)
	}
	for i := range kinds {
		if _, err := s.GetRevocation(ctx, fmt.Sprintf("short-%d", i)); !errors.Is(err, ErrNotFound) {
			t.Errorf("short-%d: err = %v, want ErrNotFound", i, err)
		}
		if _, err := s.GetRevocation(ctx, fmt.Sprintf("long-%d", i)); err != nil {
			t.Errorf("long-%d: %v", i, err)
		}
	}
	if _, err := s.GetRevocation(ctx, "extended"); err != nil {
		t.Errorf("extended revocation swept: %v", err)
	}
	if got := ttlEntries(t, s); got != 4+1+4 {
		t.Errorf("%d TTL entries left, want 9", got)
	}

	c.Advance(time.Hour)
	if n, err := s.Sweep(ctx, c.Now()); err != nil || n != 9 {
		t.Errorf("final Sweep = %d, %v; want 9", n, err)
	}
	if got := ttlEntries(t, s); got != 0 {
		t.Errorf("%d TTL entries left, want 0", got)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketRevocationIDs).Stats().KeyN; n != 0 {
			t.Errorf("%d id entries left, want 0", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// More due entries than one sweep transaction takes.
func TestSweepManyBatches(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	const n = 2*sweepBatch + 17
	putExpiredJTIs(t, s, n)
	c.Advance(time.Hour)
	got, err := s.Sweep(ctx, c.Now())
	if err != nil || got != n {
		t.Fatalf("Sweep = %d, %v; want %d", got, err, n)
	}
	if st, _ := s.Stats(ctx); st.Revocations[KindJTI] != 0 {
		t.Errorf("%d left", st.Revocations[KindJTI])
	}
}

// putExpiredJTIs writes n revocations expiring within the first n ms
// after t0.
func putExpiredJTIs(t *testing.T, s *Bolt, n int) {
	t.Helper()
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			if _, err := putRevocation(tx, Revocation{
				ID: fmt.Sprintf("r%d", i), Kind: KindJTI, Issuer: iss, Value: fmt.Sprint(i),
				CreatedAt: t0, NotBefore: t0, ExpiresAt: t0.Add(time.Duration(i+1) * time.Millisecond),
			}, t0.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A backlog is swept in transactions with a rest between them, during
// which other writes go through: a decision's write never waits behind
// the whole sweep.
func TestSweepRestsBetweenTransactionsAndLetsWritesThrough(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	const n = 3*sweepBatch + 5 // four transactions
	putExpiredJTIs(t, s, n)
	c.Advance(time.Hour)
	var rests []time.Duration
	s.rest = func(ctx context.Context, d time.Duration) error {
		rests = append(rests, d)
		// A spend in the rest commits: the sweep holds no lock now.
		fresh, err := s.SpendDPoPJTI(ctx, fmt.Sprintf("spend-%d", len(rests)), c.Now().Add(time.Hour))
		if err != nil || !fresh {
			t.Errorf("spend during the rest = %v, %v; want a fresh spend", fresh, err)
		}
		return nil
	}
	got, err := s.Sweep(ctx, c.Now())
	if err != nil || got != n {
		t.Fatalf("Sweep = %d, %v; want %d", got, err, n)
	}
	if len(rests) != 3 {
		t.Fatalf("rests = %v; want one between each two of the 4 transactions", rests)
	}
	for _, d := range rests {
		if d < sweepRestMin {
			t.Errorf("rest %s shorter than %s", d, sweepRestMin)
		}
	}
	if st, _ := s.Stats(ctx); st.DPoPJTIs != 3 {
		t.Errorf("%d spends kept, want the 3 made during the rests", st.DPoPJTIs)
	}
}

func TestSweepRestIsAMultipleOfTheTransactionsTime(t *testing.T) {
	for _, tc := range []struct{ took, want time.Duration }{
		{0, sweepRestMin},
		{100 * time.Microsecond, sweepRestMin},
		{5 * time.Millisecond, 20 * time.Millisecond},
	} {
		if got := sweepRest(tc.took); got != tc.want {
			t.Errorf("sweepRest(%s) = %s, want %s", tc.took, got, tc.want)
		}
	}
}

// A sweep stopped during a rest returns what it removed so far and the
// context's error.
func TestSweepStopsDuringARest(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	putExpiredJTIs(t, s, 2*sweepBatch+1)
	c.Advance(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	s.rest = func(ctx context.Context, d time.Duration) error {
		cancel()
		return restCtx(ctx, time.Hour)
	}
	got, err := s.Sweep(ctx, c.Now())
	if !errors.Is(err, context.Canceled) || got != sweepBatch {
		t.Errorf("Sweep = %d, %v; want %d, context.Canceled", got, err, sweepBatch)
	}
}

func TestRunSweeper(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "j", ExpiresAt: t0.Add(time.Minute)})
	c.Advance(time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunSweeper(ctx, time.Millisecond) }()
	for ttlEntries(t, s) != 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunSweeper returned %v after cancel, want nil", err)
	}
	if err := s.RunSweeper(context.Background(), 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero interval: err = %v, want ErrInvalid", err)
	}
}
