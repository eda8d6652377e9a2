package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// goldenBlock is a fenced json block of the docs, after a
// <!-- golden: NAME.json --> comment: it must show what docs/examples/NAME.json
// holds, which a test took from a real response (or, for guardrails/NAME.json,
// from a real decision of the shipped policy: TestGuardrailWorkedExamples in
// internal/decision).
var goldenBlock = regexp.MustCompile("(?s)<!-- golden: ((?:[A-Za-z0-9_-]+/)?[A-Za-z0-9._-]+) -->\\s*\\n[ \\t]*```json\\n(.*?)\\n[ \\t]*```[ \\t]*(?:\\n|$)")

// TestDocsGoldenBlocks: every marked block of README.md and docs/ equals its
// golden file (as JSON: spacing may differ), every golden file a marked
// block names exists, and every golden file of docs/examples/ is still
// produced by TestOpenAPIRealResponses (those of its subdirectories are
// checked by the tests that write them: docs/examples/guardrails/ by
// TestGuardrailWorkedExamples).
func TestDocsGoldenBlocks(t *testing.T) {
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	marked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		if n := strings.Count(string(b), "<!-- golden:"); n != len(goldenBlock.FindAll(b, -1)) {
			t.Errorf("%s: %d golden comments but %d are followed by a ```json block", name, n, len(goldenBlock.FindAll(b, -1)))
		}
		for _, m := range goldenBlock.FindAllSubmatch(b, -1) {
			marked++
			golden, block := string(m[1]), m[2]
			want, err := os.ReadFile(filepath.Join(examplesDir, golden))
			if err != nil {
				t.Errorf("%s quotes docs/examples/%s, which no test produces", name, golden)
				continue
			}
			var got, exp any
			if err := json.Unmarshal(block, &got); err != nil {
				t.Errorf("%s: the block quoting %s is not JSON: %v", name, golden, err)
				continue
			}
			_ = json.Unmarshal(want, &exp)
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("%s: the block quoting %s differs from it; paste the file's content:\n%s", name, golden, want)
			}
		}
	}
	if marked == 0 {
		t.Error("no marked golden block in README.md or docs/")
	}

	tb := apiTestbed(t)
	produced := map[string]bool{}
	for _, ex := range apiExchanges(t, tb) {
		if ex.golden != "" {
			produced[ex.golden] = true
		}
	}
	for name := range docGoldens {
		produced[name] = true
	}
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && !produced[e.Name()] {
			t.Errorf("docs/examples/%s is no longer produced by TestOpenAPIRealResponses: delete it and the blocks that quote it", e.Name())
		}
	}
	for name := range produced {
		if docGoldens[name] != "" {
			continue // checkDocGolden says it
		}
		if _, err := os.Stat(filepath.Join(examplesDir, name)); err != nil {
			t.Errorf("docs/examples/%s is missing: go test ./cmd/pdp -run TestOpenAPIRealResponses -update", name)
		}
	}
}

// docGoldens are the golden files of docs/examples/ written by tests other
// than TestOpenAPIRealResponses (with checkDocGolden), by the test that
// writes each.
var docGoldens = map[string]string{}

// docGolden registers a golden file of docs/examples/ that test writes.
func docGolden(name, test string) string {
	docGoldens[name] = test
	return name
}

// stableDocValues replace, member by member, what changes from run to run
// in the docs' golden files.
var stableDocValues = map[string]any{
	"decision_id":   exampleValues["decision_id"],
	"revision":      exampleValues["revision"],
	"activated":     "2026-12-05T09:30:00Z",
	"last_checked":  "2026-12-05T09:30:00Z",
	"last_success":  "2026-12-05T09:30:00Z",
	"last_error_at": "2026-12-05T09:30:04Z",
	"last_fetch":    "2026-12-05T09:30:00Z",
}

// checkDocGolden compares docs/examples/name with body (JSON; the members
// of stableDocValues fixed, each old→new of replace applied first), or
// writes it with -update. The docs quote it in a golden block.
func checkDocGolden(t *testing.T, name string, body []byte, replace ...string) {
	t.Helper()
	if _, ok := docGoldens[name]; !ok {
		t.Fatalf("%s: register it with docGolden", name)
	}
	s := string(body)
	for i := 0; i+1 < len(replace); i += 2 {
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v: %s", name, err, body)
	}
	var fix func(any)
	fix = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if f, ok := stableDocValues[k]; ok {
					if s, isString := x.(string); isString && s != "" {
						v[k] = f
						continue
					}
				}
				fix(x)
			}
		case []any:
			for _, x := range v {
				fix(x)
			}
		}
	}
	fix(v)
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join(examplesDir, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run %s with -update)", err, docGoldens[name])
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/examples/%s differs from the real answer:\n%s\nwant\n%s", name, got, want)
	}
}
