package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A source of one's own (a directory or a bundle without the shipped
// config_errors module) is validated by the shipped validator all the
// same; its own config_errors rules add to it; a minimal policy with no
// data.pdp has nothing to be refused for.
func TestSourceWithoutTheShippedValidatorIsValidated(t *testing.T) {
	const broken = `{"pdp": {"lifetimes": {"default": {"max_lifetime": "30 minutes"}}}, "acme": {"tenants": []}}`
	const ownRule = `package tokenguard

config_errors contains {"path": "acme.tenants", "message": "must be an object"} if not is_object(data.acme.tenants)
`
	tests := []struct {
		name   string
		files  map[string]string
		bundle bool
		want   []string // paths of the errors; none: activated
	}{
		{name: "fail/dir of its own with broken data.pdp",
			files: map[string]string{"data.json": broken},
			want:  []string{"pdp.lifetimes.default.max_lifetime"}},
		{name: "fail/bundle of its own with broken data.pdp", bundle: true,
			files: map[string]string{"/data.json": broken},
			want:  []string{"pdp.lifetimes.default.max_lifetime"}},
		{name: "fail/an unknown key under data.pdp",
			files: map[string]string{"data.json": `{"pdp": {"scope": {}}}`},
			want:  []string{"pdp.scope"}},
		{name: "fail/its own rules add to the shipped ones",
			files: map[string]string{"data.json": broken, "own.rego": ownRule},
			want:  []string{"acme.tenants", "pdp.lifetimes.default.max_lifetime"}},
		{name: "fail/its own rules alone",
			files: map[string]string{"data.json": `{"pdp": {}, "acme": {"tenants": []}}`, "own.rego": ownRule},
			want:  []string{"acme.tenants"}},
		// data.pdp made (in part) by rules of the source's own modules is
		// what the policy reads: it is validated as data would be.
		{name: "fail/data.pdp made by a rule",
			files: map[string]string{"pdp.rego": "package pdp\n\nlifetimes := {\"default\": {\"max_lifetime\": \"30 minutes\"}}\n"},
			want:  []string{"pdp.lifetimes.default.max_lifetime"}},
		{name: "fail/a key of data.pdp made by a rule beside its data",
			files: map[string]string{"data.json": `{"pdp": {"lifetimes": {}}}`, "pdp.rego": "package pdp\n\nscope := {}\n"},
			want:  []string{"pdp.scope"}},
		{name: "fail/a document under data.pdp made by a rule",
			files: map[string]string{"routes.rego": "package pdp.lifetimes\n\ngrant_types := 7\n"},
			want:  []string{"pdp.lifetimes.grant_types"}},
		{name: "ok/sound data.pdp made by a rule",
			files: map[string]string{"pdp.rego": "package pdp\n\nlifetimes := {\"default\": {\"max_lifetime\": \"30m\"}}\n"}},
		{name: "ok/a minimal policy without data.pdp",
			files: map[string]string{"data.json": `{"acme": {"tenants": {}}}`}},
		{name: "ok/sound data.pdp",
			files: map[string]string{"data.json": `{"pdp": {"lifetimes": {"default": {"max_lifetime": "30m"}}}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set *Set
			var err error
			if tt.bundle {
				files := map[string]string{"/tokenguard/main/main.rego": "package tokenguard.main\n\ndecision := 1\n"}
				for k, v := range tt.files {
					files[k] = v
				}
				path := filepath.Join(t.TempDir(), "bundle.tar.gz")
				if err := os.WriteFile(path, tarball(t, files), 0o600); err != nil {
					t.Fatal(err)
				}
				set, err = ReadBundle("own", path, Limits{})
			} else {
				dir := writePolicy(t, "decision := 1")
				for k, v := range tt.files {
					if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				set, err = LoadDir(dir, Limits{})
			}
			if err != nil {
				t.Fatal(err)
			}
			err = NewEngine(nil).Activate(context.Background(), set)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Activate = %v, want activated", err)
				}
				return
			}
			var ce *ConfigErrorsError
			if !errors.As(err, &ce) || !errors.Is(err, ErrRefused) {
				t.Fatalf("Activate = %v, want refused with configuration errors", err)
			}
			var got []string
			for _, e := range ce.Errors {
				got = append(got, e.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors at %v, want %v (%v)", got, tt.want, ce.Errors)
			}
		})
	}
}

// BenchmarkShippedValidator measures what the shipped validator adds to
// the activation of a version.
func BenchmarkShippedValidator(b *testing.B) {
	data := map[string]any{"pdp": map[string]any{"lifetimes": map[string]any{"default": map[string]any{"max_lifetime": "30m"}}}}
	for b.Loop() {
		if errs, err := shippedConfigErrors(context.Background(), data); err != nil || len(errs) != 0 {
			b.Fatal(errs, err)
		}
	}
}
