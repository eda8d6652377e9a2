package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// FuzzBundleManifest feeds bundle manifests and data documents, as a
// bundle service or a policy repository could ship them, through the
// bundle reader: it never panics, and a bundle it accepts has a manifest
// whose roots the combiner can compare.
func FuzzBundleManifest(f *testing.F) {
	seeds := [][2]string{
		{`{"revision":"r1","roots":["tokenguard","pdp"]}`, `{"pdp":{}}`},
		{`{"revision":"r1"}`, `{}`},
		{`{"roots":[""]}`, `{}`},
		{`{"roots":["a","a/b"]}`, `{"a":{"b":1}}`},
		{`{"roots":["/"]}`, `{}`},
		{`{"roots":null,"revision":1}`, `{}`},
		{`{"revision":"r","revision":"s"}`, `{}`},
		{`{"metadata":{"x":"\ud800"}}`, `{"x":1e400}`},
		{`{"rego_version":0}`, `{}`},
		{`{"wasm":[{"entrypoint":"a/b","module":"/x.wasm"}]}`, `{}`},
		{`{"roots":["x"]}`, `[1,2]`},
		{`[]`, `null`},
		{``, ``},
		{`{"roots":["` + strings.Repeat("a/", 300) + `"]}`, `{}`},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	module := "package tokenguard\n\nallow := true\n"
	f.Fuzz(func(t *testing.T, manifest, data string) {
		if len(manifest) > 64<<10 || len(data) > 64<<10 {
			return
		}
		files := map[string]string{"/.manifest": manifest, "/data.json": data, "/tokenguard/main.rego": module}
		b, err := readBundle("fuzz", bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(tarball(t, files)), ""), nil, DefaultLimits)
		if err != nil {
			return
		}
		if b.Manifest.Roots == nil {
			t.Fatal("an accepted bundle has no roots: the reader defaults them")
		}
		_ = rootsOverlap(*b.Manifest.Roots, []string{"other"})
		_, _ = combine([]string{"fuzz"}, []*bundle.Bundle{b})
	})
}

// tarball writes files into a .tar.gz, in the order given by their names.
func tarball(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"/.manifest", "/data.json", "/tokenguard/main.rego"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
