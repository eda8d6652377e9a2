package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const corruptAdvice = "is corrupt"

// fill opens a store in dir, stores n jti revocations (enough for branch
// pages), and closes it. It returns their values.
func fill(t *testing.T, dir string, n int) []string {
	t.Helper()
	s, err := OpenBolt(dir, BoltOptions{Now: newClock().Now, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	vals := putMany(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return vals
}

func putMany(t *testing.T, s *Bolt, n int) []string {
	t.Helper()
	var vals []string
	for len(vals) < n {
		var rs []Revocation
		for range min(500, n-len(vals)) {
			v := fmt.Sprintf("jti-%06d-%s", len(vals), strings.Repeat("x", 40))
			vals = append(vals, v)
			rs = append(rs, Revocation{Kind: KindJTI, Issuer: iss, Value: v, ExpiresAt: t0.Add(time.Hour)})
		}
		if _, err := s.PutRevocations(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
	}
	return vals
}

// pagesOf returns the reachable pages of the file at path by type, and
// its page size.
func pagesOf(t *testing.T, path string) (branch, leaf []uint64, ps int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	m, err := chooseMeta(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	w := &checkWalker{ctx: context.Background(), r: f, size: fi.Size(), ps: uint64(m.pageSize), hwm: m.hwm, seen: map[uint64]bool{}}
	if err := w.tree(m.root, nil, nil, 0); err != nil {
		t.Fatalf("walk of a sound file: %v", err)
	}
	hdr := make([]byte, pageHeaderSize)
	for id := range w.seen {
		if _, err := f.ReadAt(hdr, int64(id)*int64(m.pageSize)); err != nil {
			t.Fatal(err)
		}
		if ne.Uint64(hdr) != id {
			continue // an overflow page
		}
		switch ne.Uint16(hdr[8:]) {
		case flagBranch:
			branch = append(branch, id)
		case flagLeaf:
			leaf = append(leaf, id)
		}
	}
	if len(branch) == 0 || len(leaf) == 0 {
		t.Fatalf("test file has %d branch and %d leaf pages; want both", len(branch), len(leaf))
	}
	return branch, leaf, int64(m.pageSize)
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// corruptions damage a store file the ways disks and people do.
var corruptions = []struct {
	name   string
	damage func(t *testing.T, path string)
}{
	{"fail/file truncated to half", func(t *testing.T, path string) {
		fi, _ := os.Stat(path)
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}},
	{"fail/file truncated inside its meta pages", func(t *testing.T, path string) {
		if err := os.Truncate(path, 100); err != nil {
			t.Fatal(err)
		}
	}},
	{"fail/both meta pages zeroed", func(t *testing.T, path string) {
		_, _, ps := pagesOf(t, path)
		writeAt(t, path, 0, make([]byte, 2*ps))
	}},
	{"fail/a leaf page zeroed", func(t *testing.T, path string) {
		_, leaf, ps := pagesOf(t, path)
		writeAt(t, path, int64(leaf[len(leaf)/2])*ps, make([]byte, ps))
	}},
	{"fail/a branch page zeroed", func(t *testing.T, path string) {
		branch, _, ps := pagesOf(t, path)
		writeAt(t, path, int64(branch[0])*ps, make([]byte, ps))
	}},
	{"fail/a branch element points past the end of the file", func(t *testing.T, path string) {
		branch, _, ps := pagesOf(t, path)
		b := make([]byte, 8)
		ne.PutUint64(b, 1<<40)
		writeAt(t, path, int64(branch[0])*ps+pageHeaderSize+8, b)
	}},
	{"fail/bytes flipped in a branch page's elements", func(t *testing.T, path string) {
		branch, _, ps := pagesOf(t, path)
		f, _ := os.ReadFile(path)
		off := int64(branch[0])*ps + pageHeaderSize
		b := bytes.Clone(f[off : off+48])
		for i := range b {
			b[i] ^= 0xA5
		}
		writeAt(t, path, off, b)
	}},
	{"fail/a leaf key length runs off the page", func(t *testing.T, path string) {
		_, leaf, ps := pagesOf(t, path)
		b := make([]byte, 4)
		ne.PutUint32(b, 1<<30)
		writeAt(t, path, int64(leaf[0])*ps+pageHeaderSize+8, b)
	}},
	{"fail/not a bbolt file", func(t *testing.T, path string) {
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 2000), 0o600); err != nil {
			t.Fatal(err)
		}
	}},
}

// A corrupt file is refused at open with an error that says what to do;
// never a panic (bbolt's own walk of the pages at open runs in a goroutine
// of its own: a panic there would end the test binary).
func TestOpenRefusesCorruptFile(t *testing.T) {
	for _, tt := range corruptions {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fill(t, dir, 3000)
			path := filepath.Join(dir, FileName)
			tt.damage(t, path)
			s, err := OpenBolt(dir, BoltOptions{LockTimeout: 200 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatal("OpenBolt of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			for _, want := range []string{"store file " + path + " " + corruptAdvice, "restore a backup (pdp store restore) or move it away"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// A sound file passes the check, and the check gives up when its time is
// up.
func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 3000)
	path := filepath.Join(dir, FileName)
	if err := CheckFile(context.Background(), path); err != nil {
		t.Fatalf("CheckFile of a sound file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := CheckFile(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckFile with its time up = %v, want context.Canceled", err)
	}
	s, err := OpenBolt(dir, BoltOptions{CheckTimeout: time.Nanosecond})
	if err == nil {
		_ = s.Close()
		t.Fatal("OpenBolt with a check that cannot finish succeeded")
	}
	if !strings.Contains(err.Error(), "store.check_timeout") {
		t.Errorf("err = %v, want it to name store.check_timeout", err)
	}
	s, err = OpenBolt(dir, BoltOptions{CheckTimeout: time.Nanosecond, SkipCheck: true})
	if err != nil {
		t.Fatalf("OpenBolt skipping the check: %v", err)
	}
	_ = s.Close()
}

// A file damaged under a running store: reads fail with an error, the
// store faults (writes refused, Ready names the file) and the process
// lives on.
func TestCorruptionUnderRunningStore(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, leaf []uint64, ps int64)
	}{
		{"fail/a leaf page zeroed", func(t *testing.T, path string, leaf []uint64, ps int64) {
			for _, id := range leaf {
				writeAt(t, path, int64(id)*ps, make([]byte, ps))
			}
		}},
		{"fail/file truncated", func(t *testing.T, path string, _ []uint64, ps int64) {
			if err := os.Truncate(path, 2*ps); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestIn(t, dir, newClock())
			putMany(t, s, 3000)
			_, leaf, ps := pagesOf(t, s.Path())
			tt.damage(t, s.Path(), leaf, ps)
			_, err := s.ListRevocations(context.Background(), RevocationFilter{})
			if err == nil {
				t.Fatal("ListRevocations over damaged pages succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ListRevocations err = %v, want ErrCorrupt", err)
			}
			if err := s.Ready(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), s.Path()) {
				t.Errorf("Ready = %v, want ErrCorrupt naming the file", err)
			}
			_, err = s.PutRevocation(context.Background(), Revocation{Kind: KindJTI, Issuer: iss, Value: "after", ExpiresAt: t0.Add(time.Hour)})
			if !errors.Is(err, ErrFaulted) {
				t.Errorf("PutRevocation on a corrupt store = %v, want ErrFaulted", err)
			}
		})
	}
}

// The store file removed, renamed away or replaced under a running store:
// the next write is not acknowledged, later ones are refused, Ready names
// the file; reads go on from the file still open.
func TestFileRemovedUnderRunningStore(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"fail/file deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"fail/file renamed away", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
		}},
		{"fail/file replaced by a copy", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".new", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name+"/noticed by the next write", func(t *testing.T) {
			s := openTest(t, newClock())
			before := mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "before", ExpiresAt: t0.Add(time.Hour)})
			tt.change(t, s.Path())
			_, err := s.PutRevocation(context.Background(), Revocation{Kind: KindJTI, Issuer: iss, Value: "after", ExpiresAt: t0.Add(time.Hour)})
			if !errors.Is(err, ErrFaulted) {
				t.Fatalf("PutRevocation after the file changed = %v, want ErrFaulted", err)
			}
			if _, err := s.PutRevocation(context.Background(), Revocation{Kind: KindJTI, Issuer: iss, Value: "later", ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, ErrFaulted) {
				t.Fatalf("a later PutRevocation = %v, want ErrFaulted", err)
			}
			if err := s.Ready(); !errors.Is(err, ErrFaulted) || !strings.Contains(err.Error(), s.Path()) {
				t.Errorf("Ready = %v, want ErrFaulted naming the file", err)
			}
			if got, err := s.GetRevocation(context.Background(), before.ID); err != nil || got.Value != "before" {
				t.Errorf("GetRevocation after the fault = %+v, %v; want the revocation from the open file", got, err)
			}
		})
		t.Run(tt.name+"/noticed by the watcher", func(t *testing.T) {
			s, err := OpenBolt(t.TempDir(), BoltOptions{WatchInterval: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tt.change(t, s.Path())
			waitFor(t, func() bool { return errors.Is(s.Ready(), ErrFaulted) })
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met")
}

// The lock is a file of its own: a second store on the same data dir is
// refused even after pdp.db was deleted.
func TestDataDirLock(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(path string) error
	}{
		{"fail/second open while the first runs", func(string) error { return nil }},
		{"fail/second open after pdp.db was deleted", os.Remove},
		{"fail/second open after pdp.db was renamed away", func(p string) error { return os.Rename(p, p+".old") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestIn(t, dir, newClock())
			if err := tt.change(s.Path()); err != nil {
				t.Fatal(err)
			}
			second, err := OpenBolt(dir, BoltOptions{LockTimeout: 50 * time.Millisecond, Reset: true})
			if err == nil {
				_ = second.Close()
				t.Fatal("a second store opened the same data dir")
			}
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
				t.Errorf("err = %v, want ErrLocked naming the data dir", err)
			}
		})
	}
	t.Run("ok/the lock is released at close", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenBolt(dir, BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		openTestIn(t, dir, newClock())
	})
}

// The store-id file tells a first start from a store whose file is gone.
func TestStoreID(t *testing.T) {
	open := func(dir string, reset bool) (*Bolt, error) {
		return OpenBolt(dir, BoltOptions{LockTimeout: 200 * time.Millisecond, Reset: reset, Now: newClock().Now})
	}
	t.Run("ok/a new store writes its id", func(t *testing.T) {
		dir := t.TempDir()
		openTestIn(t, dir, newClock())
		if id, err := readStoreID(dir); err != nil || len(id) != 32 {
			t.Fatalf("store-id = %q, %v", id, err)
		}
	})
	for _, tt := range []struct {
		name   string
		change func(path string) error
	}{
		{"missing pdp.db", os.Remove},
		{"0-byte pdp.db", func(p string) error { return os.Truncate(p, 0) }},
	} {
		t.Run("fail/"+tt.name+" where a store was", func(t *testing.T) {
			dir := t.TempDir()
			fill(t, dir, 10)
			if err := tt.change(filepath.Join(dir, FileName)); err != nil {
				t.Fatal(err)
			}
			s, err := open(dir, false)
			if err == nil {
				_ = s.Close()
				t.Fatal("opened an empty store where one existed")
			}
			if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "--store-reset") {
				t.Errorf("err = %v, want ErrMissing naming --store-reset", err)
			}
		})
		t.Run("ok/"+tt.name+" with reset starts empty with a new id", func(t *testing.T) {
			dir := t.TempDir()
			fill(t, dir, 10)
			old, _ := readStoreID(dir)
			if err := tt.change(filepath.Join(dir, FileName)); err != nil {
				t.Fatal(err)
			}
			s, err := open(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if rs, _ := s.ListRevocations(context.Background(), RevocationFilter{}); len(rs) != 0 {
				t.Errorf("reset store holds %d revocations", len(rs))
			}
			if id, _ := readStoreID(dir); id == old || id == "" {
				t.Errorf("store-id after reset = %q, old %q; want a new one", id, old)
			}
		})
	}
	t.Run("ok/a store made before store ids gets one and keeps its revocations", func(t *testing.T) {
		dir := t.TempDir()
		vals := fill(t, dir, 10)
		if err := os.Remove(filepath.Join(dir, IDFileName)); err != nil {
			t.Fatal(err)
		}
		s, err := open(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if rs, _ := s.ListRevocations(context.Background(), RevocationFilter{}); len(rs) != len(vals) {
			t.Errorf("upgraded store holds %d revocations, want %d", len(rs), len(vals))
		}
		if id, _ := readStoreID(dir); id == "" {
			t.Error("no store-id written on upgrade")
		}
	})
}

// A write the disk refused makes Ready fail until a write succeeds; the
// watcher's probe clears it without any client write.
func TestWriteFaultClearsItself(t *testing.T) {
	s, err := OpenBolt(t.TempDir(), BoltOptions{WatchInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.setWriteFault(errors.New("input/output error"))
	if err := s.Ready(); !errors.Is(err, ErrFaulted) || !strings.Contains(err.Error(), "refused a write") {
		t.Fatalf("Ready = %v, want a write fault", err)
	}
	waitFor(t, func() bool { return s.Ready() == nil })
}

// A backup taken from a running store and restored keeps every revocation;
// restore refuses while a store runs and refuses a damaged backup.
func TestBackupRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openTestIn(t, dir, newClock())
	vals := putMany(t, s, 2000)
	for _, k := range []Kind{KindSession, KindSubject, KindClient} {
		mustPut(t, s, Revocation{Kind: k, Issuer: iss, Value: "v-" + string(k), ExpiresAt: t0.Add(time.Hour)})
	}
	want, err := s.ListRevocations(context.Background(), RevocationFilter{})
	if err != nil || len(want) != len(vals)+3 {
		t.Fatalf("ListRevocations = %d, %v", len(want), err)
	}
	var buf bytes.Buffer
	var size int64
	if _, err := s.Backup(context.Background(), &buf, func(n int64) { size = n }); err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) {
		t.Errorf("announced size %d, wrote %d", size, buf.Len())
	}
	backup := filepath.Join(t.TempDir(), "pdp.backup")
	if _, err := SaveBackup(context.Background(), &buf, backup); err != nil {
		t.Fatal(err)
	}
	if err := Restore(context.Background(), dir, backup, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("Restore while the store runs = %v, want ErrLocked", err)
	}
	// Lose everything: revocations made after the backup, then the file.
	mustPut(t, s, Revocation{Kind: KindJTI, Issuer: iss, Value: "after-backup", ExpiresAt: t0.Add(time.Hour)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "damaged")
	b, _ := os.ReadFile(backup)
	_ = os.WriteFile(damaged, b[:len(b)/2], 0o600)
	if err := Restore(context.Background(), dir, damaged, time.Second); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Restore of a damaged backup = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left a file: %v", err)
	}
	if err := Restore(context.Background(), dir, backup, time.Second); err != nil {
		t.Fatal(err)
	}
	r := openTestIn(t, dir, newClock())
	got, err := r.ListRevocations(context.Background(), RevocationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("restored %d revocations, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Value != want[i].Value || !got[i].ExpiresAt.Equal(want[i].ExpiresAt) {
			t.Fatalf("restored revocation %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// A backup of a stopped store is taken under the data dir's lock.
func TestBackupDir(t *testing.T) {
	dir := t.TempDir()
	vals := fill(t, dir, 50)
	dst := filepath.Join(t.TempDir(), "b")
	if _, err := BackupDir(context.Background(), dir, dst, time.Second); err != nil {
		t.Fatal(err)
	}
	s := openTestIn(t, dir, newClock())
	if _, err := BackupDir(context.Background(), dir, dst+"2", 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Errorf("BackupDir while a store runs = %v, want ErrLocked", err)
	}
	_ = s.Close()
	other := t.TempDir()
	if err := Restore(context.Background(), other, dst, time.Second); err != nil {
		t.Fatal(err)
	}
	r := openTestIn(t, other, newClock())
	if got, _ := r.ListRevocations(context.Background(), RevocationFilter{}); len(got) != len(vals) {
		t.Errorf("restored %d revocations, want %d", len(got), len(vals))
	}
}
