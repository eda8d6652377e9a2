package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestShippedBundleMatchesRego: the example bundle holds exactly the
// modules and the data of rego/, byte for byte, so that whoever serves it
// serves what the repository tests.
func TestShippedBundleMatchesRego(t *testing.T) {
	const rebuild = "bundles/tokenguard.tar.gz no longer matches rego/: rebuild it with `go tool task bundle` and commit both files of bundles/"
	f, err := os.Open(shippedBundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	inBundle := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		inBundle[strings.TrimPrefix(h.Name, "/")] = b
	}

	var problems []string
	err = filepath.WalkDir("../../rego", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		rel, _ := filepath.Rel("../..", path)
		rel = filepath.ToSlash(rel)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, ok := inBundle[rel]
		switch {
		case !ok:
			problems = append(problems, rel+" is missing from the bundle")
		case !bytes.Equal(got, want):
			problems = append(problems, rel+" differs")
		}
		delete(inBundle, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wantData, gotData any
	b, err := os.ReadFile("../../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &wantData); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(inBundle["data.json"], &gotData); err != nil || !reflect.DeepEqual(gotData, wantData) {
		problems = append(problems, "data.json differs from rego/data.json")
	}
	delete(inBundle, "data.json")
	for name := range inBundle {
		if name != ".manifest" && name != ".signatures.json" {
			problems = append(problems, name+" is in the bundle but not in rego/")
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s:\n  %s", rebuild, strings.Join(problems, "\n  "))
	}
}
