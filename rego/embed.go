// Package rego holds the shipped policy. The PDP embeds the part of it
// that validates policy data (config_errors.rego and the library modules
// it imports), so that every policy version is validated by it, whatever
// its source holds.
package rego

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed config_errors.rego lib/*.rego
var validator embed.FS

// ValidatorModules are the shipped validator of data.pdp
// (config_errors.rego) and the library modules beside it, tests left out,
// keyed by their path in this directory.
func ValidatorModules() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(validator, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		b, err := validator.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = string(b)
		return nil
	})
	return out
}
