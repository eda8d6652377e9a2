//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// dirLock is the process lock of a data dir: an exclusive flock on
// <data_dir>/pdp.lock, held from OpenBolt to Close. It is a file of its own,
// never removed, so that it stays with the directory whatever happens to
// the store file: a second process on the same data dir is refused even
// when pdp.db was deleted or replaced.
type dirLock struct {
	f    *os.File
	path string
}

// lockDir takes the lock of dataDir, waiting up to timeout for another
// process to release it.
func lockDir(dataDir string, timeout time.Duration) (*dirLock, error) {
	path := lockPath(dataDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &dirLock{f: f, path: path}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, &lockedError{dir: dataDir, timeout: timeout}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// release drops the lock. The file stays: removing it would let a process
// that opened it just before lock a file nobody else sees.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// file is the open lock file, to tell whether it is still the one at path.
func (l *dirLock) file() *os.File { return l.f }
