package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PreRestoreName is the name under which Restore keeps the file it
// replaced, in the data dir.
const PreRestoreName = FileName + ".pre-restore"

// ErrBackupBusy reports a backup asked for while another one is being
// taken: one at a time, since each holds a snapshot the size of the store.
var ErrBackupBusy = errors.New("store: a backup is already being taken")

// snapshotPrefix starts the names of the snapshots Backup writes in the
// data dir; one left behind by a crash is removed at open.
const snapshotPrefix = "." + FileName + ".snapshot-"

// Backup writes a consistent copy of the store file to w. The copy is
// first written to a snapshot file in the data dir in one read transaction
// (bbolt's Tx.WriteTo), which is closed before anything is sent to w: a
// slow reader of w never holds the transaction open, which would block
// the next commit that must grow the file's mapping, and every write
// behind it. The snapshot is removed once sent. One backup at a time: a
// second one while the first runs fails with ErrBackupBusy.
// started, when set, is told the size of the copy before it is written.
// It works while the store is faulted because its file was removed: the
// copy is read from the file still open.
func (b *Bolt) Backup(ctx context.Context, w io.Writer, started func(size int64)) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !b.backingUp.CompareAndSwap(false, true) {
		return 0, ErrBackupBusy
	}
	defer b.backingUp.Store(false)
	snap, err := os.CreateTemp(b.dir, snapshotPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	defer func() {
		_ = snap.Close()
		_ = os.Remove(snap.Name())
	}()
	var size int64
	err = b.view(func(tx *bolt.Tx) error {
		var err error
		size, err = tx.WriteTo(snap)
		return err
	})
	if err == nil {
		_, err = snap.Seek(0, io.SeekStart)
	}
	if err != nil {
		return 0, fmt.Errorf("store: backup: write the snapshot: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if started != nil {
		started(size)
	}
	n, err := io.Copy(w, io.LimitReader(snap, size))
	if err == nil && n != size {
		err = fmt.Errorf("the snapshot has %d bytes, %d expected", n, size)
	}
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// removeSnapshots removes the snapshots a backup left in dir when the
// process ended while taking it.
func removeSnapshots(dir string, logger *slog.Logger) {
	names, _ := filepath.Glob(filepath.Join(dir, snapshotPrefix+"*"))
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			logger.Warn("store: remove a backup's leftover snapshot", "path", name, "error", err)
		}
	}
}

// SaveBackup writes the backup read from r to dst: a temporary file beside
// dst, fsync'ed and checked (CheckFile), then renamed over dst. A backup
// that fails its check is not kept.
func SaveBackup(ctx context.Context, r io.Reader, dst string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("store: backup: write %s: %w", dst, err)
	}
	if err := verifyStoreFile(ctx, tmp.Name()); err != nil {
		return n, fmt.Errorf("store: backup: the copy failed its check, nothing written to %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, syncDir(filepath.Dir(dst))
}

// BackupDir writes a backup of the store in dataDir to dst while no server
// runs on it: it takes the data dir's lock (ErrLocked while a server holds
// it: take the backup through its admin API then) and copies the file in
// one read transaction.
func BackupDir(ctx context.Context, dataDir, dst string, lockTimeout time.Duration) (int64, error) {
	lock, err := lockDir(dataDir, lockTimeout)
	if err != nil {
		return 0, err
	}
	defer lock.release()
	path := filepath.Join(dataDir, FileName)
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return 0, fmt.Errorf("store: backup: no store in %s", dataDir)
	}
	if err := CheckFile(ctx, path); err != nil {
		return 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return 0, fmt.Errorf("store: backup: open %s: %w", path, err)
	}
	defer db.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(pw)
			return err
		}))
	}()
	n, err := SaveBackup(ctx, pr, dst)
	_ = pr.CloseWithError(errors.New("backup ended"))
	return n, err
}

// verifyStoreFile checks a file that is to become a store: consistent
// (CheckFile) and of the schema this build reads.
func verifyStoreFile(ctx context.Context, path string) error {
	if err := CheckFile(ctx, path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not a pdp store (no meta bucket)")
		}
		if v := meta.Get(keySchema); string(v) != schemaVersion {
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
}

// Restore replaces the store file in dataDir by the backup src, while no
// server runs on it: it takes the data dir's lock (ErrLocked while a
// server holds it), checks the backup, copies it beside pdp.db and fsyncs
// it, keeps the file it replaces as pdp.db.pre-restore, renames the copy
// into place and fsyncs the directory. A store-id is written when there is
// none.
func Restore(ctx context.Context, dataDir, src string, lockTimeout time.Duration) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	lock, err := lockDir(dataDir, lockTimeout)
	if err != nil {
		return err
	}
	defer lock.release()
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dataDir, "."+FileName+".restore-*")
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: restore: copy %s: %w", src, err)
	}
	if err := verifyStoreFile(ctx, tmp.Name()); err != nil {
		return fmt.Errorf("store: restore: %s is not a usable backup, nothing changed: %w", src, err)
	}
	path := filepath.Join(dataDir, FileName)
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		old := filepath.Join(dataDir, PreRestoreName)
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: restore: %w", err)
		}
		if err := os.Link(path, old); err != nil {
			return fmt.Errorf("store: restore: keep the current file: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	id, err := readStoreID(dataDir)
	if err != nil {
		return err
	}
	if id == "" {
		if err := writeStoreID(dataDir, newStoreID()); err != nil {
			return fmt.Errorf("store: restore: write %s: %w", IDFileName, err)
		}
	}
	return nil
}
