package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Set is one version of the policy: Rego modules plus their data document,
// and a revision that changes whenever either changes.
type Set struct {
	Modules  []*ast.Module
	Data     map[string]any
	Revision string
	Source   string
}

// LoadDir loads the Rego modules and data files (JSON/YAML) below dir the way
// `opa run` and `opa test` do. Test modules (*_test.rego) and the
// capabilities declaration are not served.
func LoadDir(dir string) (*Set, error) {
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{dir}, notServed)
	if err != nil {
		return nil, fmt.Errorf("load policy dir %s: %w", dir, err)
	}
	if len(res.Modules) == 0 {
		return nil, fmt.Errorf("load policy dir %s: no Rego modules", dir)
	}
	names := make([]string, 0, len(res.Modules))
	for name := range res.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	set := &Set{Data: res.Documents, Source: "dir:" + dir}
	for _, name := range names {
		f := res.Modules[name]
		set.Modules = append(set.Modules, f.Parsed)
		fmt.Fprintf(h, "module %s %d\n", strings.TrimPrefix(name, dir), len(f.Raw))
		h.Write(f.Raw)
	}
	data, err := json.Marshal(res.Documents) // map keys are sorted: stable
	if err != nil {
		return nil, fmt.Errorf("load policy dir %s: encode data: %w", dir, err)
	}
	fmt.Fprintf(h, "data %d\n", len(data))
	h.Write(data)
	set.Revision = hex.EncodeToString(h.Sum(nil))[:16]
	return set, nil
}

// notServed filters out what a policy directory holds for tooling only.
func notServed(_ string, info fs.FileInfo, _ int) bool {
	name := info.Name()
	if info.IsDir() {
		return strings.HasPrefix(name, ".") && name != "."
	}
	return strings.HasSuffix(name, "_test.rego") || name == "capabilities.json" || strings.HasPrefix(name, ".")
}
