package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// OpenReadOnly opens the store file in dataDir for reading only, for tools
// that evaluate policies against a copy of the state (pdp opa --data-dir).
// It never writes, never creates the file or the data dir, and never takes
// the data dir's lock: while a server holds the file it fails after
// lockTimeout with an error matching ErrLocked (read a backup instead).
// Only the read methods may be used; writes fail.
func OpenReadOnly(dataDir string, lockTimeout time.Duration) (*Bolt, error) {
	opts, err := BoltOptions{LockTimeout: lockTimeout, SkipCheck: true}.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("store: open read-only: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: open read-only: no store file %s", path)
		}
		return nil, fmt.Errorf("store: open read-only: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &lockedError{dir: dataDir, timeout: opts.LockTimeout}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open read-only %s: %w", path, err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	close(stop)
	close(done)
	return &Bolt{db: db, dir: dataDir, path: path, opts: opts, versions: newVersions(), pending: newPending(),
		stop: stop, watchDone: done, rest: restCtx}, nil
}
