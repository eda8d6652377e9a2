package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds the write functions that share one transaction.
const maxBatch = 1000

// errTrySolo tells a caller that its function failed inside a shared
// transaction and must run on its own.
var errTrySolo = errors.New("store: run the write on its own")

// batcher coalesces concurrent writes into shared transactions (group
// commit): a write starts at once when none is in progress, and the writes
// that arrive while a transaction is being committed share the next one, and
// its fsync. Unlike a timer-based batch, a lone writer never waits. When the
// last transaction was shared (writes are arriving together), the next one
// waits `wait` for more before it starts: an fsync costs far more CPU than
// the wait costs latency, and under load the batches grow with the commit
// time plus the wait.
//
// As with bbolt's Batch, a function may run more than once (when another
// function of its batch fails, the transaction is rolled back and the rest
// run again), so it must only read and write through its transaction and
// set its results afresh on each run.
type batcher struct {
	// update runs a write transaction (Bolt.run); committed checks a
	// committed write before it is acknowledged (Bolt.afterCommit).
	update    func(func(*bolt.Tx) error) error
	committed func(error) error
	wait      time.Duration
	sleep     func(time.Duration) // time.Sleep; tests count the waits
	mu        sync.Mutex
	queue     []batchCall
	running   bool
}

type batchCall struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// do runs fn in a write transaction, possibly shared with others, and
// returns once that transaction is committed, or with ctx's error once ctx
// is done: a caller that gives up (its deadline passed, its client went
// away) stops waiting behind a commit that does not come (a transaction
// held up by a grown file's remap, a stalled disk). A write still queued
// is then dropped; one already in a transaction may yet be committed.
func (b *batcher) do(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := batchCall{fn: fn, err: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	var err error
	select {
	case err = <-c.err:
	case <-ctx.Done():
		b.drop(c)
		return ctx.Err()
	}
	if err == errTrySolo {
		err = b.update(fn)
		if b.committed != nil {
			err = b.committed(err)
		}
	}
	return err
}

// drop takes c out of the queue when it is still waiting there.
func (b *batcher) drop(c batchCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.queue {
		if q.err == c.err {
			b.queue = slices.Delete(b.queue, i, i+1)
			return
		}
	}
}

// loop commits the queued writes, batch after batch, until none is left.
func (b *batcher) loop() {
	last := 0
	for {
		if last > 1 && b.wait > 0 {
			b.sleep(b.wait)
		}
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		last = n
		if n == 0 {
			b.running = false
			b.queue = nil
			b.mu.Unlock()
			return
		}
		calls := slices.Clone(b.queue[:n])
		b.queue = slices.Delete(b.queue, 0, n)
		b.mu.Unlock()
		runBatch(b.update, b.committed, calls)
	}
}

// runBatch runs calls in one transaction. A call that fails is taken out and
// told to run on its own; the others run again without it.
// A committed transaction is checked once (committed), for all its calls.
func runBatch(update func(func(*bolt.Tx) error) error, committed func(error) error, calls []batchCall) {
	for len(calls) > 0 {
		failed := -1
		err := update(func(tx *bolt.Tx) error {
			failed = -1
			for i, c := range calls {
				if err := safeCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].err <- errTrySolo
			calls = slices.Delete(calls, failed, failed+1)
			continue
		}
		if committed != nil {
			err = committed(err)
		}
		for _, c := range calls {
			c.err <- err
		}
		return
	}
}

// safeCall turns a panic of fn into an error, so that one faulty write
// neither kills the batch goroutine nor strands the others; run on its own,
// the write panics again in its caller's goroutine.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in batched write: %v", p)
		}
	}()
	return fn(tx)
}
