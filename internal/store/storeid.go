package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// IDFileName is the file beside pdp.db that says a store was created in
// the data dir: a random id, written once the store file exists. Without
// it, a missing or empty pdp.db could not be told from a first start.
const IDFileName = "store-id"

// LockFileName is the process lock of the data dir (see lockDir).
const LockFileName = "pdp.lock"

// maxIDFile bounds what is read of the store-id file.
const maxIDFile = 256

func lockPath(dataDir string) string { return filepath.Join(dataDir, LockFileName) }

// readStoreID returns the id in dataDir's store-id file, "" when there is
// none.
func readStoreID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, IDFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, maxIDFile)
	n, _ := f.Read(buf)
	id := strings.TrimSpace(string(buf[:n]))
	if id == "" {
		// An empty id file still says a store was created here.
		id = "unknown"
	}
	return id, nil
}

// newStoreID returns a random id.
func newStoreID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeStoreID writes id to dataDir's store-id file, atomically and
// durably.
func writeStoreID(dataDir, id string) error {
	return writeFileAtomic(filepath.Join(dataDir, IDFileName), []byte(id+"\n"))
}

// writeFileAtomic replaces path with data: a temporary file beside it,
// fsync'ed, renamed over path, and the directory fsync'ed.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
