package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/config"
)

// shippedDir copies the shipped modules (no tests) to a new directory with
// data as its data.json, and returns it.
func shippedDir(t *testing.T, data map[string]any) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../../rego", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../rego", path)
		writeFile(t, dst, rel, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	writeData(t, dst, data)
	return dst
}

func writeData(t *testing.T, dir string, data map[string]any) {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "data.json", string(b))
}

// shippedData is rego/data.json.
func shippedData(t testing.TB) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// brokenVariants change one setting of the shipped data, of each kind
// data.tokenguard.config_errors checks, and name the path it must report.
var brokenVariants = []struct {
	name string
	path string
	edit func(pdp map[string]any)
}{
	{"fail/a duration that is not one", "pdp.lifetimes.default.max_lifetime", func(p map[string]any) {
		p["lifetimes"].(map[string]any)["default"].(map[string]any)["max_lifetime"] = "30 minutes"
	}},
	{"fail/a client's duration of another type", "pdp.lifetimes.clients.legacy-batch.max_lifetime", func(p map[string]any) {
		p["lifetimes"].(map[string]any)["clients"].(map[string]any)["legacy-batch"] = map[string]any{"max_lifetime": 300}
	}},
	{"fail/a CIDR that is not one", "pdp.clients.payments-job.allowed_cidrs[0]", func(p map[string]any) {
		p["clients"].(map[string]any)["payments-job"].(map[string]any)["allowed_cidrs"] = []any{"10.20.0.0/33"}
	}},
	{"fail/an enum value that is not one", "pdp.modes.dpop", func(p map[string]any) {
		p["modes"].(map[string]any)["dpop"] = "off"
	}},
	{"fail/a sender constraint that is not one", "pdp.clients.payments-job.sender_constraint", func(p map[string]any) {
		p["clients"].(map[string]any)["payments-job"].(map[string]any)["sender_constraint"] = "DPoP"
	}},
	{"fail/an integer out of range", "pdp.fingerprint.ipv4_prefix", func(p map[string]any) {
		p["fingerprint"].(map[string]any)["ipv4_prefix"] = 33
	}},
	{"fail/a list of another type", "pdp.environments.prod.frozen_scopes", func(p map[string]any) {
		p["environments"].(map[string]any)["prod"].(map[string]any)["frozen_scopes"] = "accounts:write"
	}},
	{"fail/an unknown key under data.pdp", "pdp.lifetime", func(p map[string]any) { p["lifetime"] = map[string]any{} }},
	{"fail/a route key misspelt", "pdp.routes[0].scope", func(p map[string]any) {
		p["routes"].([]any)[0].(map[string]any)["scope"] = []any{"accounts:read"}
	}},
	{"fail/a route with no methods can never match", "pdp.routes[0].methods", func(p map[string]any) {
		p["routes"].([]any)[0].(map[string]any)["methods"] = []any{}
	}},
	{"fail/a route host with a port can never match", "pdp.routes[0].host", func(p map[string]any) {
		p["routes"].([]any)[0].(map[string]any)["host"] = "api.example.com:443"
	}},
	{"fail/a route shadowed by the one before", "pdp.routes[1]", func(p map[string]any) {
		first := p["routes"].([]any)[0].(map[string]any)
		p["routes"] = append(p["routes"].([]any), map[string]any{"name": "shadowed", "host": first["host"], "path": first["path"], "methods": []any{"GET"}})
	}},
	{"fail/the refresh reuse policy misspelt", "pdp.token_endpoint.refresh_reuse", func(p map[string]any) {
		p["token_endpoint"].(map[string]any)["refresh_reuse"] = "revoke"
	}},
	{"fail/data.pdp not an object", "pdp", func(p map[string]any) { clear(p); p["__not_an_object__"] = true }},
}

// TestDataWithConfigErrorsIsRefused: a version of the policy directory whose
// data has a configuration error is refused at activation, whatever the
// setting: the last good version keeps serving, the status lists the error
// by path, the observer hears of a refused version; a good version after
// it is activated and the status clears.
func TestDataWithConfigErrorsIsRefused(t *testing.T) {
	dir := shippedDir(t, shippedData(t))
	e, s, rec := newSources(t, config.Policy{Dir: dir}, SourcesOptions{})
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	good, _ := e.Active()
	src := s.sources[0]
	for _, tt := range brokenVariants {
		t.Run(tt.name, func(t *testing.T) {
			data := shippedData(t)
			tt.edit(data["pdp"].(map[string]any))
			if tt.path == "pdp" {
				data["pdp"] = "not an object"
			}
			writeData(t, dir, data)
			failures := rec.failures()
			s.refresh(context.Background(), src)

			if info, _ := e.Active(); info.Revision != good.Revision {
				t.Errorf("active revision %s, want the last good one %s", info.Revision, good.Revision)
			}
			if _, _, err := e.Eval(context.Background(), ast.NewObject(), time.Now()); err != nil {
				t.Errorf("the last good version does not decide: %v", err)
			}
			st := sourceStatus(s, 0)
			if st.State != StateFailed || !hasPath(st.ConfigErrors, tt.path) {
				t.Errorf("status = %s %+v, want failed listing %s", st.State, st.ConfigErrors, tt.path)
			}
			if rec.failures() != failures+1 {
				t.Fatal("the observer did not hear of the refusal")
			}
			err := rec.failed[len(rec.failed)-1]
			var invalid *ConfigErrorsError
			if !errors.Is(err, ErrRefused) || !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("refusal = %v", err)
			}
		})
	}
	t.Run("ok/the fixed data is activated and the status clears", func(t *testing.T) {
		writeData(t, dir, shippedData(t))
		s.refresh(context.Background(), src)
		if st := sourceStatus(s, 0); st.State != StateActive || st.ConfigErrors != nil {
			t.Errorf("status = %+v", st)
		}
	})
}

func hasPath(errs []ConfigError, path string) bool {
	for _, e := range errs {
		if e.Path == path {
			return true
		}
	}
	return false
}

// TestOwnModulesAddConfigErrors: a module of one's own adds to
// data.tokenguard.config_errors, and what it adds refuses the version; a
// config_errors of the wrong shape refuses it too, whatever the data.
func TestOwnModulesAddConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		module string
		data   string
		want   string // part of the refusal; "" for activated
	}{
		{name: "ok/own check passes", module: `package tokenguard
config_errors contains {"path": "acme.tenants", "message": "must be an object"} if not is_object(data.acme.tenants)`,
			data: `{"acme": {"tenants": {}}}`},
		{name: "fail/own check fails", module: `package tokenguard
config_errors contains {"path": "acme.tenants", "message": "must be an object"} if not is_object(data.acme.tenants)`,
			data: `{"acme": {"tenants": []}}`, want: "acme.tenants: must be an object"},
		{name: "fail/config_errors not a set", module: "package tokenguard\nconfig_errors := \"none\"", data: `{}`, want: "is not a set"},
		{name: "fail/an entry without a message", module: "package tokenguard\nconfig_errors contains {\"path\": \"x\"}", data: `{}`, want: "not an object with a path and a message"},
		{name: "fail/config_errors raises an error", module: "package tokenguard\nconfig_errors contains {\"path\": \"x\", \"message\": sprintf(\"%d\", [to_number(\"x\")])}", data: `{}`, want: "config_errors"},
	}
	// With folding on, config_errors is evaluated against the modules as
	// compiled for folding; with it off, they are compiled for it.
	for _, tt := range tests {
		for _, noFold := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noFold=%v", tt.name, noFold), func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, dir, "main.rego", markerModule("m"))
				writeFile(t, dir, "own.rego", tt.module)
				writeFile(t, dir, "data.json", tt.data)
				set, err := LoadDir(dir, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				e := NewEngine(nil)
				e.noFold = noFold
				err = e.Activate(context.Background(), set)
				switch {
				case tt.want == "" && err != nil:
					t.Errorf("refused: %v", err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrRefused)):
					t.Errorf("err = %v, want a refusal naming %q", err, tt.want)
				}
			})
		}
	}
}

// TestBundleDataWithConfigErrorsIsRefused: the same for bundles, local and
// from a bundle service.
func TestBundleDataWithConfigErrorsIsRefused(t *testing.T) {
	modules := map[string]string{}
	err := filepath.WalkDir("../../rego", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel("../../rego", path)
		modules["/"+filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	bundleWith := func(data map[string]any) []byte {
		return bundleFiles{revision: fmt.Sprint(len(data)), modules: modules, data: data}.tarball(t, nil)
	}
	broken := shippedData(t)
	brokenVariants[0].edit(broken["pdp"].(map[string]any))
	const path = "pdp.lifetimes.default.max_lifetime"

	t.Run("fail/a local bundle", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "b.tar.gz")
		writeFile(t, filepath.Dir(file), filepath.Base(file), string(bundleWith(shippedData(t))))
		e, s, rec := newSources(t, config.Policy{Bundles: []config.Bundle{{Name: "main", Path: file}}}, SourcesOptions{})
		if err := s.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		good, _ := e.Active()
		writeFile(t, filepath.Dir(file), filepath.Base(file), string(bundleWith(broken)))
		s.refresh(context.Background(), s.sources[0])
		st := sourceStatus(s, 0)
		if info, _ := e.Active(); info.Revision != good.Revision || st.State != StateFailed || !hasPath(st.ConfigErrors, path) || !errors.Is(rec.failed[0], ErrRefused) {
			t.Errorf("after a broken bundle: status %+v, failures %v", st, rec.failed)
		}
	})
	t.Run("fail/a first bundle from a bundle service", func(t *testing.T) {
		svc := &bundleService{}
		svc.serve(bundleWith(broken))
		srv := httptest.NewServer(svc)
		defer srv.Close()
		e, s, _ := newSources(t, config.Policy{Bundles: []config.Bundle{{Name: "main", URL: srv.URL}}}, SourcesOptions{Client: srv.Client()})
		err := s.Load(context.Background())
		var invalid *ConfigErrorsError
		if !errors.As(err, &invalid) || !hasPath(invalid.Errors, path) || e.Ready() == nil {
			t.Errorf("Load = %v", err)
		}
	})
}

// TestSourcesOverASizeLimitAreRefused: every kind of source is held to the
// same per-file and total limits before anything is read; the refusal names
// the file (or the source) and the setting, and the last good version keeps
// serving.
func TestSourcesOverASizeLimitAreRefused(t *testing.T) {
	lim := Limits{MaxFileBytes: 4 << 10, MaxTotalBytes: 10 << 10}
	big := `{"blob": "` + strings.Repeat("x", 5<<10) + `"}`
	medium := `{"blob": "` + strings.Repeat("x", 3<<10) + `"}`
	tarOf := func(files map[string]string) []byte {
		files["/tokenguard/main.rego"] = markerModule("m")
		return tarGz(t, files)
	}
	tests := []struct {
		name    string
		source  func(t *testing.T) config.Policy
		setting string
		file    string
	}{
		{name: "fail/a dir file over max_file_bytes", setting: "policy.max_file_bytes", file: "big.json", source: func(t *testing.T) config.Policy {
			dir := t.TempDir()
			writeFile(t, dir, "main.rego", markerModule("m"))
			writeFile(t, dir, "big.json", big)
			return config.Policy{Dir: dir}
		}},
		{name: "fail/a dir over max_total_bytes", setting: "policy.max_total_bytes", source: func(t *testing.T) config.Policy {
			dir := t.TempDir()
			writeFile(t, dir, "main.rego", markerModule("m"))
			for i := range 4 {
				writeFile(t, dir, fmt.Sprintf("d%d/data.json", i), medium)
			}
			return config.Policy{Dir: dir}
		}},
		{name: "fail/a local bundle file over max_file_bytes", setting: "policy.max_file_bytes", file: "big/data.json", source: func(t *testing.T) config.Policy {
			dir := t.TempDir()
			writeFile(t, dir, "b.tar.gz", string(tarOf(map[string]string{"/big/data.json": big})))
			return config.Policy{Bundles: []config.Bundle{{Name: "main", Path: filepath.Join(dir, "b.tar.gz")}}}
		}},
		{name: "fail/a local bundle over max_total_bytes", setting: "policy.max_total_bytes", source: func(t *testing.T) config.Policy {
			dir := t.TempDir()
			files := map[string]string{}
			for i := range 4 {
				files[fmt.Sprintf("/d%d/data.json", i)] = medium
			}
			writeFile(t, dir, "b.tar.gz", string(tarOf(files)))
			return config.Policy{Bundles: []config.Bundle{{Name: "main", Path: filepath.Join(dir, "b.tar.gz")}}}
		}},
		{name: "fail/a bundle directory file over max_file_bytes", setting: "policy.max_file_bytes", file: "data.json", source: func(t *testing.T) config.Policy {
			dir := t.TempDir()
			writeFile(t, dir, "main.rego", markerModule("m"))
			writeFile(t, dir, "data.json", big)
			return config.Policy{Bundles: []config.Bundle{{Name: "main", Path: dir}}}
		}},
		{name: "fail/a downloaded bundle over max_total_bytes", setting: "policy.max_total_bytes", source: func(t *testing.T) config.Policy {
			// (The download itself is over the limit.)
			svc := &bundleService{}
			noise := make([]byte, 12<<10)
			for i := range noise {
				noise[i] = byte(i*7919 + i/3)
			}
			svc.serve(noise)
			srv := httptest.NewServer(svc)
			t.Cleanup(srv.Close)
			return config.Policy{Bundles: []config.Bundle{{Name: "main", URL: srv.URL}}}
		}},
		{name: "fail/a downloaded bundle that decompresses over max_total_bytes", setting: "policy.max_total_bytes", source: func(t *testing.T) config.Policy {
			files := map[string]string{}
			for i := range 4 {
				files[fmt.Sprintf("/d%d/data.json", i)] = medium
			}
			svc := &bundleService{}
			svc.serve(tarOf(files))
			srv := httptest.NewServer(svc)
			t.Cleanup(srv.Close)
			return config.Policy{Bundles: []config.Bundle{{Name: "main", URL: srv.URL}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.source(t)
			cfg.MaxFileBytes, cfg.MaxTotalBytes = lim.MaxFileBytes, lim.MaxTotalBytes
			e, s, rec := newSources(t, cfg, SourcesOptions{})
			err := s.Load(context.Background())
			var tooLarge *TooLargeError
			if !errors.As(err, &tooLarge) || !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrRefused) {
				t.Fatalf("Load = %v, want a refusal over a size limit", err)
			}
			if e.Ready() == nil || tooLarge.Setting != tt.setting || !strings.Contains(err.Error(), tt.setting) ||
				(tt.file != "" && !strings.HasSuffix(tooLarge.Path, tt.file)) || !errors.Is(rec.failed[0], ErrRefused) {
				t.Errorf("refusal = %v (%+v)", err, tooLarge)
			}
		})
	}
	t.Run("fail/the last good dir version keeps serving", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "main.rego", markerModule("m"))
		e, s, _ := newSources(t, config.Policy{Dir: dir, MaxFileBytes: lim.MaxFileBytes, MaxTotalBytes: lim.MaxTotalBytes}, SourcesOptions{})
		if err := s.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		good, _ := e.Active()
		writeFile(t, dir, "big.json", big)
		s.refresh(context.Background(), s.sources[0])
		if info, _ := e.Active(); info.Revision != good.Revision || sourceStatus(s, 0).State != StateFailed ||
			!strings.Contains(sourceStatus(s, 0).LastError, "big.json") {
			t.Errorf("status = %+v", sourceStatus(s, 0))
		}
	})
}

// tarGz is a .tar.gz of files (by path).
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// vmRSS is the process's resident set size, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// bigData writes a data file of about size bytes of many small objects (as
// policy data is: far more memory per byte than one long string).
func bigData(t *testing.T, dir, name string, size int) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"big": {`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d": {"id": %d, "name": "entry %d", "tags": ["a", "b"]}`, i, i, i)
	}
	b.WriteString(`}}`)
	writeFile(t, dir, name, b.String())
}

// TestMemoryOfRefusedAndReplacedVersionsGoesBack measures the process's
// resident memory around big policy versions: one over the size limit
// is refused without being read, and the memory of one that is refused for
// its data, or replaced, goes back to the operating system. The bounds are
// generous; the versions themselves take hundreds of MiB.
func TestMemoryOfRefusedAndReplacedVersionsGoesBack(t *testing.T) {
	if testing.Short() {
		t.Skip("loads big policies")
	}
	dir := t.TempDir()
	writeFile(t, dir, "main.rego", markerModule("small"))
	writeFile(t, dir, "data.json", `{"marker": "d"}`)
	_, s, _ := newSources(t, config.Policy{Dir: dir, MaxFileBytes: 32 << 20, MaxTotalBytes: 32 << 20}, SourcesOptions{})
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	settle := func() int64 {
		runtime.GC()
		debug.FreeOSMemory()
		return vmRSS(t)
	}
	const slack = 96 << 20

	t.Run("fail/over the limit: never read", func(t *testing.T) {
		bigData(t, dir, "big.json", 48<<20)
		defer os.Remove(filepath.Join(dir, "big.json"))
		base := settle()
		s.refresh(context.Background(), s.sources[0])
		if st := sourceStatus(s, 0); st.State != StateFailed || !strings.Contains(st.LastError, "policy.max_") {
			t.Fatalf("status = %+v", st)
		}
		if after := vmRSS(t); after-base > slack {
			t.Errorf("RSS grew by %d MiB refusing a version over the limit", (after-base)>>20)
		}
	})
	t.Run("ok/a big version refused for its data, then one replaced", func(t *testing.T) {
		bigData(t, dir, "big.json", 12<<20)
		writeFile(t, dir, "own.rego", "package tokenguard\nconfig_errors contains {\"path\": \"big\", \"message\": \"refused\"} if data.big.k0.id == 0\n")
		base := settle()
		s.refresh(context.Background(), s.sources[0])
		if st := sourceStatus(s, 0); st.State != StateFailed || !hasPath(st.ConfigErrors, "big") {
			t.Fatalf("status = %+v", st)
		}
		if after := vmRSS(t); after-base > slack {
			t.Errorf("RSS is %d MiB above where it was after a big version was refused", (after-base)>>20)
		}
		// Accepted now: it serves, then a small version replaces it.
		writeFile(t, dir, "own.rego", "package tokenguard\n")
		s.refresh(context.Background(), s.sources[0])
		if st := sourceStatus(s, 0); st.State != StateActive {
			t.Fatalf("status = %+v", st)
		}
		peak := vmRSS(t)
		if err := os.Remove(filepath.Join(dir, "big.json")); err != nil {
			t.Fatal(err)
		}
		s.refresh(context.Background(), s.sources[0])
		after := vmRSS(t)
		t.Logf("RSS: %d MiB before, %d MiB with the big version, %d MiB after it was replaced", base>>20, peak>>20, after>>20)
		if after-base > slack {
			t.Errorf("RSS is %d MiB above where it was after the big version was replaced", (after-base)>>20)
		}
	})
}
