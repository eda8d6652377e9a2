package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
)

// TestDevFilesAreWrittenPrivately: the files the dev mode writes in the
// data dir (the admin credential, the revoke client's hash, the JWKS) are
// each a new 0600 file of their own, whatever was there before: a symlink
// planted in their place does not make the dev mode write through it (the
// admin credential into a file another user reads, or over a file of the
// user's), and a readable file left there does not hold the credential,
// not even for a moment, before its mode is changed.
func TestDevFilesAreWrittenPrivately(t *testing.T) {
	for _, name := range []string{devAdminTokenName, "dev-revoke-client.sha256", "dev-jwks.json"} {
		for _, planted := range []string{"symlink", "readable file"} {
			t.Run("fail/"+planted+" in place of "+name, func(t *testing.T) {
				dir := t.TempDir()
				outside := filepath.Join(t.TempDir(), "victim")
				if err := os.WriteFile(outside, []byte("keep me\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				target := filepath.Join(dir, name)
				switch planted {
				case "symlink":
					if err := os.Symlink(outside, target); err != nil {
						t.Fatal(err)
					}
				default:
					if err := os.WriteFile(target, []byte("old\n"), 0o644); err != nil {
						t.Fatal(err)
					}
					// A hard link stands for whoever opened the old file.
					if err := os.Remove(outside); err != nil {
						t.Fatal(err)
					}
					if err := os.Link(target, outside); err != nil {
						t.Fatal(err)
					}
				}
				cfg := config.Defaults()
				cfg.Listen, cfg.DataDir = "127.0.0.1:0", dir
				if err := (&devMode{}).configure(&cfg); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Lstat(target)
				if err != nil {
					t.Fatal(err)
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s is %v, want a regular 0600 file", name, fi.Mode())
				}
				b, err := os.ReadFile(outside)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]string{"symlink": "keep me\n", "readable file": "old\n"}[planted]; string(b) != want {
					t.Errorf("the file outside was written through: %q", b)
				}
				if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
					t.Errorf("the file outside had its mode changed to %v", fi.Mode())
				}
			})
		}
	}
}
