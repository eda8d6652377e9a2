package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Set is one version of the policy: Rego modules plus their data document,
// and a revision that changes whenever either changes.
type Set struct {
	Modules []*ast.Module
	// Tests are the policy's own test modules (*_test.rego). They are never
	// served; with policy.test_on_load they must pass before the set is
	// activated. They do not count towards the revision.
	Tests    []*ast.Module
	Data     map[string]any
	Revision string
	Source   string
	// Bytes is about the size of the modules and the data (as JSON).
	Bytes int64
}

// LoadDir loads the Rego modules and data files (JSON/YAML) below dir the way
// `opa run` and `opa test` do. Test modules (*_test.rego) go to Tests, not to
// Modules; the capabilities declaration and hidden files are left out.
// The files' sizes are checked against lim (zero: DefaultLimits) before
// any is read: over a limit, the error is a *TooLargeError.
func LoadDir(dir string, lim Limits) (*Set, error) {
	return loadDir(dir, lim, nil)
}

// loadDir is LoadDir taking the modules that parsed (when not nil) keeps
// from the directory's last load instead of parsing them again.
func loadDir(dir string, lim Limits, parsed *parseCache) (*Set, error) {
	if _, err := checkTree(dir, lim, notServed); err != nil {
		return nil, fmt.Errorf("load policy dir %s: %w", dir, err)
	}
	// OPA's loader walks the tree and loads the data; the modules it
	// meets are left to parsed, by the same paths.
	var regoFiles []string
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{dir}, func(path string, info fs.FileInfo, depth int) bool {
			if notServed(path, info, depth) {
				return true
			}
			if !info.IsDir() && filepath.Ext(path) == ".rego" {
				regoFiles = append(regoFiles, path)
				return true
			}
			return false
		})
	if err != nil {
		// (Every file could be read a moment ago: what does not parse or
		// merge is a refused version.)
		return nil, refused(fmt.Errorf("load policy dir %s: %w", dir, err))
	}
	files, err := parsed.parse(regoFiles, lim.orDefault().MaxFileBytes)
	if err != nil {
		return nil, refused(fmt.Errorf("load policy dir %s: %w", dir, err))
	}
	for name, f := range res.Modules {
		// (Modules of a bundle file inside the directory.)
		files[name] = f
	}
	set := &Set{Data: res.Documents, Source: "dir:" + dir}
	raw := map[string][]byte{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f := files[name]
		if isTestModule(name) {
			set.Tests = append(set.Tests, f.Parsed)
			continue
		}
		set.Modules = append(set.Modules, f.Parsed)
		raw[strings.TrimPrefix(name, dir)] = f.Raw
	}
	if len(set.Modules) == 0 {
		return nil, refused(fmt.Errorf("load policy dir %s: no Rego modules", dir))
	}
	if set.Revision, set.Bytes, err = revisionOf(raw, set.Data); err != nil {
		return nil, fmt.Errorf("load policy dir %s: %w", dir, err)
	}
	return set, nil
}

// revisionOf is the revision of a policy: a digest of its modules (by name)
// and its data document.
// It also returns the size of what it digested.
func revisionOf(modules map[string][]byte, data map[string]any) (string, int64, error) {
	h := sha256.New()
	var size int64
	for _, name := range slices.Sorted(maps.Keys(modules)) {
		size += int64(len(modules[name]))
		fmt.Fprintf(h, "module %s %d\n", name, len(modules[name]))
		h.Write(modules[name])
	}
	b, err := json.Marshal(data) // map keys are sorted: stable
	if err != nil {
		return "", 0, fmt.Errorf("encode data: %w", err)
	}
	size += int64(len(b))
	fmt.Fprintf(h, "data %d\n", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))[:16], size, nil
}

// isTestModule tells test modules by their file name, as `opa test` does.
func isTestModule(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// notServed filters out what a policy directory holds for tooling only.
func notServed(_ string, info fs.FileInfo, _ int) bool {
	name := info.Name()
	if info.IsDir() {
		return strings.HasPrefix(name, ".") && name != "."
	}
	return name == "capabilities.json" || strings.HasPrefix(name, ".")
}
