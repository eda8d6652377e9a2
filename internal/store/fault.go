package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrFaulted means the store file cannot take writes: it was removed or
// replaced under the running process, it is corrupt, or the disk refused
// the last write. Reads go on from the open file where they can. The
// wrapping *FaultError names the file and what to do.
var ErrFaulted = errors.New("store: the store file cannot take writes")

// ErrCorrupt means the store file failed its consistency check, or bbolt
// met an inconsistent page. It is a fault: errors matching it match
// ErrFaulted too.
var ErrCorrupt = errors.New("store: the store file is corrupt")

// ErrMissing means the store file is missing or empty where the store-id
// file says a store existed: its revocations are gone. OpenBolt refuses to
// start on it unless BoltOptions.Reset is set.
var ErrMissing = errors.New("store: the store file is missing")

// FaultKind tells why a store is faulted.
type FaultKind string

// Fault kinds.
const (
	// FaultRemoved: the file at the store's path is no longer the one open
	// (deleted, renamed or replaced). Writes would go to a file no restart
	// sees. Lasts until the process restarts.
	FaultRemoved FaultKind = "removed"
	// FaultCorrupt: the file is inconsistent. Lasts until the process
	// restarts.
	FaultCorrupt FaultKind = "corrupt"
	// FaultWrite: the disk refused the last write (full, I/O error,
	// read-only). Cleared by the next write that succeeds; the store probes
	// with a small write every watch interval.
	FaultWrite FaultKind = "write"
)

// FaultError is a store fault: which file, why, and the cause.
type FaultError struct {
	Path  string
	Kind  FaultKind
	Cause error
}

func (e *FaultError) Error() string {
	switch e.Kind {
	case FaultCorrupt:
		return fmt.Sprintf("store file %s is corrupt (%v): restore a backup (pdp store restore) or move it away", e.Path, e.Cause)
	case FaultRemoved:
		return fmt.Sprintf("store file %s was removed or replaced while the server ran (%v): writes are refused; take a backup from this server (pdp store backup --server), then restore it (pdp store restore) and restart", e.Path, e.Cause)
	default:
		return fmt.Sprintf("store file %s refused a write: %v", e.Path, e.Cause)
	}
}

func (e *FaultError) Unwrap() error { return e.Cause }

// Is matches ErrFaulted, and ErrCorrupt for a corrupt file.
func (e *FaultError) Is(target error) bool {
	return target == ErrFaulted || (target == ErrCorrupt && e.Kind == FaultCorrupt)
}

// missingError is ErrMissing with the paths and what to do.
type missingError struct{ path, idPath string }

func (e *missingError) Error() string {
	return fmt.Sprintf("store: %s is missing or empty, but %s says a store was here: every revocation it held would be lost; "+
		"restore a backup (pdp store restore) or, to start with an empty store, start once with --store-reset", e.path, e.idPath)
}

func (e *missingError) Is(target error) bool { return target == ErrMissing }

// Ready reports nil while the store can take writes, and the fault
// otherwise (what /readyz shows).
func (b *Bolt) Ready() error {
	if f := b.fault.Load(); f != nil {
		return f
	}
	if f := b.writeFault.Load(); f != nil {
		return f
	}
	return nil
}

// writable returns the lasting fault (removed, corrupt), if any: a write
// is refused before it starts. A write fault is not checked: the next write
// may succeed, and clears it.
func (b *Bolt) writable() error {
	if f := b.fault.Load(); f != nil {
		return f
	}
	return nil
}

// setFault records a lasting fault; the first one is logged and kept.
func (b *Bolt) setFault(kind FaultKind, cause error) *FaultError {
	f := &FaultError{Path: b.path, Kind: kind, Cause: cause}
	if b.fault.CompareAndSwap(nil, f) {
		b.opts.Logger.Error("store faulted: writes are refused and /readyz fails until the file is restored and the server restarted",
			"path", b.path, "fault", string(kind), "error", f.Error())
		return f
	}
	return b.fault.Load()
}

// setWriteFault records that the disk refused a write.
func (b *Bolt) setWriteFault(cause error) *FaultError {
	f := &FaultError{Path: b.path, Kind: FaultWrite, Cause: cause}
	if old := b.writeFault.Swap(f); old == nil {
		b.opts.Logger.Error("store write failed: /readyz fails until a write succeeds again", "path", b.path, "error", cause)
	}
	return f
}

// clearWriteFault is called after a write committed.
func (b *Bolt) clearWriteFault() {
	if old := b.writeFault.Swap(nil); old != nil {
		b.opts.Logger.Info("store writes succeed again", "path", b.path)
	}
}

// guard runs f, which runs a bbolt transaction, and turns a panic into
// ErrCorrupt: bbolt panics, or faults on its memory map, when it meets an
// inconsistent page. Memory faults become panics for the duration.
func (b *Bolt) guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = b.panicked(p)
		}
	}()
	return f()
}

// errPanicked is a panic of a transaction on a file that is not known to
// be corrupt: a bug, not a fault of the file.
var errPanicked = errors.New("store: a transaction panicked")

// recheckEvery bounds how often a panic leads to a check of the file.
const recheckEvery = 30 * time.Second

// panicked decides what a recovered panic of a transaction was. The file
// is checked (checkFile, under a read transaction that keeps the pages it
// walks from being reused): a file found inconsistent faults the store
// with ErrCorrupt; a file that checks clean means a bug, returned as an
// error of its own. At most one check runs at a time, and not more often
// than recheckEvery; a panic meanwhile is only an error.
func (b *Bolt) panicked(p any) error {
	cause := fmt.Errorf("bbolt: %v", p)
	if f := b.fault.Load(); f != nil && f.Kind == FaultCorrupt {
		return f
	}
	plain := fmt.Errorf("%w: %w", errPanicked, cause)
	if !b.checkMu.TryLock() {
		return plain
	}
	defer b.checkMu.Unlock()
	if !b.lastCheck.IsZero() && time.Since(b.lastCheck) < recheckEvery {
		return plain
	}
	b.lastCheck = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.CheckTimeout)
	defer cancel()
	err := b.checkLive(ctx)
	switch {
	case err == nil:
		b.opts.Logger.Error("store transaction panicked on a file that checks clean", "path", b.path, "panic", fmt.Sprint(p))
		return plain
	case ctx.Err() != nil || errors.Is(err, fs.ErrNotExist):
		b.opts.Logger.Error("store transaction panicked; the file could not be checked", "path", b.path, "panic", fmt.Sprint(p), "error", err)
		return plain
	}
	return b.setFault(FaultCorrupt, fmt.Errorf("%w, after bbolt: %v", err, p))
}

// checkLive runs checkFile on the open store's file while a read
// transaction pins its pages. bbolt's own check is not run: on a corrupt
// file it may crash in a goroutine of its own.
func (b *Bolt) checkLive(ctx context.Context) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt: %v", p)
		}
	}()
	tx, err := b.db.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return checkFile(ctx, b.path)
}

// view runs fn in a read transaction. Reads go on while the store is
// faulted: they are served from the open file where it is readable.
func (b *Bolt) view(fn func(*bolt.Tx) error) error {
	return b.guard(func() error { return b.db.View(fn) })
}

// update runs fn in a write transaction of its own. It refuses when the
// store is faulted, and after the commit checks that the file written is
// still the one at the store's path: a write is acknowledged only when a
// restart will see it.
func (b *Bolt) update(fn func(*bolt.Tx) error) error {
	return b.afterCommit(b.run(fn))
}

// run commits fn without the identity check; fn's own errors pass through,
// a failed commit is a write fault.
func (b *Bolt) run(fn func(*bolt.Tx) error) error {
	if err := b.writable(); err != nil {
		return err
	}
	var fnErr error
	err := b.guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			fnErr = fn(tx)
			return fnErr
		})
	})
	if err != nil && fnErr == nil && !errors.Is(err, ErrFaulted) && !errors.Is(err, errPanicked) && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return b.setWriteFault(err)
	}
	return err
}

// afterCommit checks the file's identity after a write transaction that
// committed (err nil), and clears a write fault.
func (b *Bolt) afterCommit(err error) error {
	if err != nil {
		return err
	}
	if err := b.checkIdentity(); err != nil {
		return err
	}
	b.clearWriteFault()
	return nil
}

// checkIdentity compares the file at the store's path with the file open:
// a missing or different file faults the store.
func (b *Bolt) checkIdentity() error {
	if f := b.fault.Load(); f != nil && f.Kind == FaultRemoved {
		return f
	}
	fi, err := os.Stat(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return b.setFault(FaultRemoved, errors.New("the file is gone"))
	case err != nil:
		return b.setWriteFault(fmt.Errorf("stat: %w", err))
	case !os.SameFile(fi, b.ident):
		return b.setFault(FaultRemoved, errors.New("another file is at its path"))
	}
	return nil
}

// keyProbe is the meta key the watcher writes to learn whether the disk
// takes writes again.
var keyProbe = []byte("probe")

// watch checks, every interval until Close, that the file at the store's
// path is still the one open and that the lock file is still in place,
// and, while the disk refuses writes, probes it with a small write.
func (b *Bolt) watch(interval time.Duration) {
	defer close(b.watchDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	lockWarned := false
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		_ = b.checkIdentity()
		if !lockWarned && b.lock != nil {
			fi, err := os.Stat(b.lock.path)
			own, oerr := b.lock.file().Stat()
			if err != nil || oerr != nil || !os.SameFile(fi, own) {
				lockWarned = true
				b.opts.Logger.Error("store lock file removed or replaced: another pdp process could now open this data dir", "path", b.lock.path)
			}
		}
		if b.writeFault.Load() != nil && b.fault.Load() == nil {
			now := b.now()
			_ = b.update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyProbe, []byte(now.UTC().Format(time.RFC3339Nano)))
			})
		}
	}
}
