//go:build integration

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullFaultsAndRecovers runs the store on a real file system that
// fills up: a size-limited tmpfs (needs root to mount; skipped otherwise).
// A write the full disk refuses is not acknowledged and makes Ready fail;
// once space is freed, the store's probe write clears the fault by itself.
func TestDiskFullFaultsAndRecovers(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	s, err := OpenBolt(filepath.Join(dir, "data"), BoltOptions{WatchInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	_ = f.Close()
	// Write until the store needs a page the disk cannot give.
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		var rs []Revocation
		for j := range 200 {
			rs = append(rs, Revocation{Kind: KindJTI, Issuer: iss, Value: fmt.Sprintf("jti-%d-%d-%s", i, j, strings.Repeat("x", 60)), ExpiresAt: time.Now().Add(time.Hour)})
		}
		_, werr = s.PutRevocations(context.Background(), rs)
	}
	if werr == nil {
		t.Fatal("every write succeeded on a full disk")
	}
	if !errors.Is(werr, ErrFaulted) || !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("write on a full disk = %v, want ErrFaulted wrapping ENOSPC", werr)
	}
	if err := s.Ready(); !errors.Is(err, ErrFaulted) || !strings.Contains(err.Error(), "refused a write") {
		t.Fatalf("Ready on a full disk = %v, want the write fault", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return s.Ready() == nil })
	if _, err := s.PutRevocation(context.Background(), Revocation{Kind: KindJTI, Issuer: iss, Value: "after", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Errorf("write after space was freed: %v", err)
	}
}
