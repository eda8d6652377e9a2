package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
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

// FuzzBundleSizeLimits feeds downloaded bundle bodies through the size
// check that runs before a bundle is read: it never panics, and a body it
// accepts holds no file over the per-file limit and no more than the total
// limit in all (counted independently, by reading every file).
func FuzzBundleSizeLimits(f *testing.F) {
	lim := Limits{MaxFileBytes: 1 << 10, MaxTotalBytes: 4 << 10}
	gzipOf := func(raw []byte) []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		_, _ = gz.Write(raw)
		_ = gz.Close()
		return buf.Bytes()
	}
	f.Add(tarball(f, map[string]string{"/data.json": `{}`, "/tokenguard/main.rego": "package tokenguard\n"}))
	f.Add(tarball(f, map[string]string{"/data.json": strings.Repeat("x", 2<<10)}))
	f.Add(tarball(f, map[string]string{"/.manifest": strings.Repeat("x", 1000), "/data.json": strings.Repeat("x", 1000), "/tokenguard/main.rego": strings.Repeat("x", 1000)}))
	f.Add([]byte("this is not a tarball"))
	f.Add(gzipOf([]byte("not a tar inside")))
	f.Add(gzipOf(make([]byte, 64<<10))) // zeros: the end of a tar, many times over
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 64<<10 {
			return
		}
		if err := checkTarball("fuzz", "fuzz", bytes.NewReader(body), lim); err != nil {
			return
		}
		gz, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("accepted a body that is not gzip: %v", err)
		}
		tr := tar.NewReader(io.LimitReader(gz, 1<<20))
		var total int64
		for {
			h, err := tr.Next()
			if err != nil {
				return
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			n, _ := io.Copy(io.Discard, tr)
			if n > lim.MaxFileBytes {
				t.Fatalf("accepted %s of %d bytes", h.Name, n)
			}
			if total += n; total > lim.MaxTotalBytes {
				t.Fatalf("accepted %d bytes in all", total)
			}
		}
	})
}
