package policy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A policy directory holding something that is not a regular file (a link
// to /dev/zero, a pipe) is refused before any loader reads it: its size is
// 0 to stat, and reading it would never stop, or never start.
func TestCheckTreeRefusesWhatIsNotARegularFile(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"fail/a symbolic link to /dev/zero", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}},
		{"fail/a named pipe", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skip("no named pipes here:", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.rego"), []byte("package tokenguard\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c.make(t, filepath.Join(dir, "data.json"))
			_, err := checkTree(dir, Limits{}, nil)
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("checkTree = %v, want a refusal naming a file that is not a regular one", err)
			}
		})
	}
	t.Run("ok/a symbolic link to a regular file, as a mounted ConfigMap has", func(t *testing.T) {
		dir, elsewhere := t.TempDir(), t.TempDir()
		target := filepath.Join(elsewhere, "data.json")
		if err := os.WriteFile(target, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, "data.json")); err != nil {
			t.Fatal(err)
		}
		if _, err := checkTree(dir, Limits{}, nil); err != nil {
			t.Fatalf("checkTree = %v, want none", err)
		}
	})
}
