package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A failing write in a shared transaction fails alone; the others commit.
func TestBatcherIsolatesFailures(t *testing.T) {
	s := openTest(t, newClock())
	boom := errors.New("boom")
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.batch.do(context.Background(), func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
					return err
				}
				switch i % 50 {
				case 7:
					return boom
				case 8:
					panic("write bug")
				}
				return nil
			})
		})
	}
	// The panicking writes panic again when they run on their own, in their
	// caller's goroutine, where the store turns the panic into an error; the
	// file checks clean, so the store is not faulted.
	wg.Wait()
	if err := s.Ready(); err != nil {
		t.Errorf("Ready after write bugs = %v, want nil (the file is sound)", err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for i := range n {
			v := tx.Bucket(bucketMeta).Get(fmt.Appendf(nil, "k%d", i))
			switch i % 50 {
			case 7:
				if !errors.Is(errs[i], boom) || v != nil {
					t.Errorf("write %d: err = %v, stored %q; want boom and nothing stored", i, errs[i], v)
				}
			case 8:
				if errs[i] == nil || errors.Is(errs[i], ErrFaulted) || v != nil {
					t.Errorf("write %d panicked: err = %v, stored %q; want a plain error and nothing stored", i, errs[i], v)
				}
			default:
				if errs[i] != nil || v == nil {
					t.Errorf("write %d: err = %v, stored %q; want committed", i, errs[i], v)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A lone writer never waits for company; writes arriving together share a
// transaction, and the one after a shared transaction first waits for more.
func TestBatcherWaitsOnlyAfterSharedCommits(t *testing.T) {
	s := openTest(t, newClock())
	var mu sync.Mutex
	var waits []time.Duration
	s.batch.wait = time.Millisecond
	s.batch.sleep = func(d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		time.Sleep(d)
	}
	put := func(i int) error {
		return s.batch.do(context.Background(), func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
		})
	}
	for i := range 20 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	if len(waits) != 0 {
		t.Fatalf("one writer at a time: %d waits, want none", len(waits))
	}

	// Hold the first transaction open until the others are queued behind
	// it, so that the next one is shared.
	release := make(chan struct{})
	first := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.batch.do(context.Background(), func(tx *bolt.Tx) error {
			close(first)
			<-release
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	<-first
	for i := range 10 {
		wg.Go(func() {
			if err := put(100 + i); err != nil {
				t.Error(err)
			}
		})
	}
	for {
		s.batch.mu.Lock()
		queued := len(s.batch.queue)
		s.batch.mu.Unlock()
		if queued == 10 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	// The shared transaction of ten writes committed; the loop waited once
	// for more before finding the queue empty.
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 1 || waits[0] != time.Millisecond {
		t.Errorf("waits = %v, want one of 1ms", waits)
	}
}

// A batch of sightings goes through the group commit: a DPoP spend that
// arrives while another transaction commits shares the batch's next
// transaction instead of waiting for the writer lock behind it.
func TestRecordFingerprintsSharesTheGroupCommit(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	exp := c.Now().Add(time.Hour)
	run := s.batch.update
	var (
		mu  sync.Mutex
		txs int
	)
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	s.batch.update = func(fn func(*bolt.Tx) error) error {
		mu.Lock()
		txs++
		n := txs
		mu.Unlock()
		if n == 1 {
			<-hold // the first transaction commits once the others wait
		}
		return run(fn)
	}
	queued := func() int {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		return len(s.batch.queue)
	}
	errs := make(chan error, 3)
	spend := func(key string) {
		fresh, err := s.SpendDPoPJTI(ctx, key, exp)
		if err == nil && !fresh {
			err = fmt.Errorf("spend %s: not fresh", key)
		}
		errs <- err
	}
	go spend("first")
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return txs == 1 })
	go func() {
		errs <- s.RecordFingerprints(ctx, []TokenSighting{{TokenHash: "h1", Sighting: Sighting{ExpiresAt: exp}}, {TokenHash: "h2", Sighting: Sighting{ExpiresAt: exp}}})
	}()
	go spend("second")
	// Both queue behind the first transaction (the sightings used to take a
	// transaction of their own, and only the spend queued).
	waitFor(t, func() bool { return queued() == 2 })
	release()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if txs != 2 {
		t.Errorf("%d transactions, want 2: the sightings and the second spend share one", txs)
	}
	for _, h := range []string{"h1", "h2"} {
		if _, ok, err := s.LastSeen(ctx, h); err != nil || !ok {
			t.Errorf("LastSeen(%s) = %v, %v; want it recorded", h, ok, err)
		}
	}
}
