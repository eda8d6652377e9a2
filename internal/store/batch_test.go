package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

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
			if i%50 == 8 {
				defer func() {
					if recover() == nil {
						t.Errorf("write %d: no panic", i)
					}
				}()
			}
			errs[i] = s.batch.do(func(tx *bolt.Tx) error {
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
	// caller's goroutine, where they are recovered above.
	wg.Wait()
	if err := s.db.View(func(tx *bolt.Tx) error {
		for i := range n {
			v := tx.Bucket(bucketMeta).Get(fmt.Appendf(nil, "k%d", i))
			switch i % 50 {
			case 7:
				if !errors.Is(errs[i], boom) || v != nil {
					t.Errorf("write %d: err = %v, stored %q; want boom and nothing stored", i, errs[i], v)
				}
			case 8:
				if v != nil {
					t.Errorf("write %d panicked but stored %q", i, v)
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
