//go:build !unix

package store

import (
	"fmt"
	"os"
	"time"
)

// dirLock is the process lock of a data dir. Where flock is not available,
// the lock file is only created: bbolt's own lock on pdp.db is the lock.
type dirLock struct {
	f    *os.File
	path string
}

func lockDir(dataDir string, _ time.Duration) (*dirLock, error) {
	path := lockPath(dataDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open lock file: %w", err)
	}
	return &dirLock{f: f, path: path}, nil
}

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (l *dirLock) file() *os.File { return l.f }
