package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestLoadDirParsesOnlyTheModulesThatChanged reloads a directory with the
// parse cache a watched directory has, after each kind of edit, and checks
// which modules were parsed again: the same *ast.Module is the one kept.
func TestLoadDirParsesOnlyTheModulesThatChanged(t *testing.T) {
	const (
		a     = "package a\n\nallow if input.x == 1\n"
		b     = "package b\n\ndeny if input.y == 2\n"
		bTest = "package b_test\n\ntest_deny if data.b.deny with input.y as 2\n"
	)
	type files map[string]string
	cases := []struct {
		name string
		edit files // written over the first version ("" removes the file)
		// kept are the modules (by file) that must be the very ones the
		// first load parsed; every other module must have been parsed again.
		kept    []string
		wantErr string
	}{
		{name: "nothing changed: every module kept", edit: files{}, kept: []string{"a.rego", "b.rego", "b_test.rego"}},
		{name: "data edited: every module kept", edit: files{"data.json": `{"pdp": {"edited": true}}`}, kept: []string{"a.rego", "b.rego", "b_test.rego"}},
		{name: "one module edited: only it parsed again", edit: files{"a.rego": a + "\nother if input.z\n"}, kept: []string{"b.rego", "b_test.rego"}},
		{name: "a test module edited: only it parsed again", edit: files{"b_test.rego": bTest + "\ntest_more if true\n"}, kept: []string{"a.rego", "b.rego"}},
		{name: "a module moved to another file: parsed under its new name", edit: files{"a.rego": "", "sub/a.rego": a}, kept: []string{"b.rego", "b_test.rego"}},
		{name: "a module that no longer parses: refused", edit: files{"b.rego": "package b\n\ndeny if {\n"}, wantErr: "rego_parse_error"},
	}
	write := func(t *testing.T, dir string, fs files) {
		t.Helper()
		for name, body := range fs {
			path := filepath.Join(dir, name)
			if body == "" {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	byFile := func(set *Set) map[string]*ast.Module {
		out := map[string]*ast.Module{}
		for _, m := range append(append([]*ast.Module{}, set.Modules...), set.Tests...) {
			out[filepath.Base(m.Package.Location.File)] = m
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, files{"a.rego": a, "b.rego": b, "b_test.rego": bTest, "data.json": `{"pdp": {}}`})
			var cache parseCache
			first, err := loadDir(dir, Limits{}, &cache)
			if err != nil {
				t.Fatal(err)
			}
			write(t, dir, tc.edit)
			next, err := loadDir(dir, Limits{}, &cache)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("load = %v, want a refusal with %q", err, tc.wantErr)
				}
				// The directory mended, the modules parsed before are kept.
				write(t, dir, files{"b.rego": b})
				if next, err = loadDir(dir, Limits{}, &cache); err != nil {
					t.Fatal(err)
				}
				tc.kept = []string{"a.rego", "b.rego", "b_test.rego"}
			} else if err != nil {
				t.Fatal(err)
			}
			uncached, err := LoadDir(dir, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if next.Revision != uncached.Revision || len(next.Modules) != len(uncached.Modules) || len(next.Tests) != len(uncached.Tests) {
				t.Fatalf("with the cache: revision %s, %d modules, %d tests; without: %s, %d, %d",
					next.Revision, len(next.Modules), len(next.Tests), uncached.Revision, len(uncached.Modules), len(uncached.Tests))
			}
			was, now, fresh := byFile(first), byFile(next), byFile(uncached)
			for file, m := range now {
				// Equal compares no locations: the file they name is
				// compared apart (evaluation errors name it).
				if !m.Equal(fresh[file]) {
					t.Errorf("%s: the cached module differs from the one parsed afresh", file)
				}
				if got, want := m.Package.Location.File, fresh[file].Package.Location.File; got != want {
					t.Errorf("%s: location file %q, parsed afresh %q", file, got, want)
				}
				kept := was[file] == m
				if want := slices.Contains(tc.kept, file); kept != want {
					t.Errorf("%s kept = %v, want %v", file, kept, want)
				}
			}
		})
	}
}

// TestParseRefusesAModuleThatGrewPastTheLimit: the sizes are checked
// before anything is read; a module written over between the check and
// the read is still read no further than the limit, and refused.
func TestParseRefusesAModuleThatGrewPastTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.rego")
	if err := os.WriteFile(path, []byte("package big\n\n"+strings.Repeat("# padding\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	var cache parseCache
	_, err := cache.parse([]string{path}, 64)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("parse = %v, want a *TooLargeError", err)
	}
	if tooLarge.Path != path || tooLarge.Limit != 64 || tooLarge.Size <= 64 || tooLarge.Setting != "policy.max_file_bytes" {
		t.Errorf("error = %+v", tooLarge)
	}
}
