package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stalledWriter is a backup client that reads nothing until released.
type stalledWriter struct {
	writing chan struct{} // closed at the first write
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func newStalledWriter() *stalledWriter {
	return &stalledWriter{writing: make(chan struct{}), release: make(chan struct{})}
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.release
	return w.buf.Write(p)
}

// A backup whose client reads nothing must not hold a read transaction
// open: a commit that grows the file (and so its mapping) would wait for
// it, and every revocation and replay check behind that commit with it.
func TestBackupStalledByItsClientDoesNotHoldUpRevocations(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	ctx := context.Background()
	if _, err := s.PutRevocation(ctx, Revocation{Kind: KindJTI, Issuer: iss, Value: "before-backup", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	client := newStalledWriter()
	var released sync.Once
	release := func() { released.Do(func() { close(client.release) }) }
	defer release()
	backupDone := make(chan error, 1)
	go func() {
		_, err := s.Backup(ctx, client, nil)
		backupDone <- err
	}()
	<-client.writing

	// Grow the file well past its mapping (bbolt maps at least 32 KiB and
	// doubles): imports of many revocations, then batched single writes.
	writesDone := make(chan error, 1)
	go func() {
		exp := c.Now().Add(time.Hour)
		for i := range 8 {
			rs := make([]Revocation, 1000)
			for j := range rs {
				rs[j] = Revocation{Kind: KindJTI, Issuer: iss, Value: fmt.Sprintf("bulk-%d-%d-%0100d", i, j, 0), ExpiresAt: exp}
			}
			if _, err := s.PutRevocations(ctx, rs); err != nil {
				writesDone <- err
				return
			}
		}
		for i := range 5 {
			if _, err := s.PutRevocation(ctx, Revocation{Kind: KindJTI, Issuer: iss, Value: fmt.Sprintf("single-%d", i), ExpiresAt: exp}); err != nil {
				writesDone <- err
				return
			}
			if _, err := s.SpendDPoPJTI(ctx, fmt.Sprintf("jti-%064d", i), exp); err != nil {
				writesDone <- err
				return
			}
		}
		writesDone <- nil
	}()
	// The writes take well under a second; the bound only keeps a
	// regression from hanging the run (the writes then wait for the
	// backup's client, which is released so that the store can close).
	select {
	case err := <-writesDone:
		if err != nil {
			t.Fatalf("writes during a stalled backup: %v", err)
		}
	case <-time.After(time.Minute):
		release()
		<-writesDone
		t.Fatal("revocations waited for a backup whose client reads nothing")
	}
	release()
	if err := <-backupDone; err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// The copy is the state when the backup was taken, and sound.
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, client.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		jtis := tx.Bucket(bucketRevocations).Bucket([]byte(KindJTI))
		if n := jtis.Stats().KeyN; n != 1 {
			return fmt.Errorf("the copy holds %d jti revocations, want the 1 made before the backup", n)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	// The snapshot is gone.
	if left, _ := filepath.Glob(filepath.Join(s.dir, snapshotPrefix+"*")); len(left) != 0 {
		t.Errorf("snapshots left after the backup: %v", left)
	}
}

// One backup at a time; a snapshot a crashed backup left is removed at open.
func TestBackupOneAtATimeAndLeftoverSnapshotsRemoved(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openTestIn(t, dir, c)
	client := newStalledWriter()
	first := make(chan error, 1)
	go func() {
		_, err := s.Backup(context.Background(), client, nil)
		first <- err
	}()
	<-client.writing
	if _, err := s.Backup(context.Background(), io.Discard, nil); !errors.Is(err, ErrBackupBusy) {
		t.Errorf("a second backup meanwhile: err = %v, want ErrBackupBusy", err)
	}
	close(client.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(context.Background(), io.Discard, nil); err != nil {
		t.Errorf("a backup after the first ended: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	left := filepath.Join(dir, snapshotPrefix+"123")
	if err := os.WriteFile(left, []byte("half a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenBolt(dir, BoltOptions{Now: c.Now, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a leftover snapshot after open: stat err = %v, want it removed", err)
	}
}

// A caller that gives up waiting for a write (its deadline passed) is
// answered at once with its context's error, and its write, still queued,
// is not made.
func TestBatcherCallerThatGivesUpStopsWaiting(t *testing.T) {
	s := openTest(t, newClock())
	release := make(chan struct{})
	holding := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.batch.do(context.Background(), func(tx *bolt.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		gaveUp <- s.batch.do(ctx, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("given-up"), []byte("v"))
		})
	}()
	for {
		s.batch.mu.Lock()
		queued := len(s.batch.queue)
		s.batch.mu.Unlock()
		if queued == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-gaveUp
	close(release)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a caller that gave up: err = %v, want context.Canceled", err)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := s.batch.do(context.Background(), func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte("given-up")); v != nil {
			return errors.New("the write of a caller that gave up while queued was made")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
