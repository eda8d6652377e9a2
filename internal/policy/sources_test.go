package policy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	// The pdp.* built-ins, which the real policies (and their tests) call.
	_ "github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
)

// markerModule is a policy whose decision shows which version it is: the
// reason code comes from the module (marker, plus a suffix another module
// may define), the message from the data document (data.marker).
func markerModule(marker string) string {
	return `package tokenguard.main

marker := "` + marker + `"

default suffix := ""

decision := {"allow": false, "status": 403, "reasons": [{"code": concat("", [marker, suffix]), "message": data.marker}]}
`
}

// decide evaluates the active policy and returns the reason code (module
// version), message (data version) and revision.
func decide(e *Engine) (code, message, revision string, err error) {
	res, rev, err := e.Eval(context.Background(), ast.NewObject(), time.Now())
	if err != nil {
		return "", "", rev, err
	}
	if len(res.Reasons) != 1 {
		return "", "", rev, fmt.Errorf("reasons = %+v", res.Reasons)
	}
	return res.Reasons[0].Code, res.Reasons[0].Message, rev, nil
}

// eventually polls cond, a bounded number of times.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never happened: %s", what)
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	// Write beside, then rename: the reader never sees half a file.
	tmp := filepath.Join(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// recorder is an Observer that remembers what it heard.
type recorder struct {
	mu        sync.Mutex
	activated []string
	failed    []error
}

func (r *recorder) Activated(source, revision string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activated = append(r.activated, source+"@"+revision)
}

func (r *recorder) Failed(source string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Errorf("%s: %w", source, err))
}

func (r *recorder) failures() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failed)
}

// startSources loads cfg's sources into a new engine and runs them until
// the test ends.
func startSources(t *testing.T, cfg config.Policy, opts SourcesOptions) (*Engine, *Sources, *recorder) {
	t.Helper()
	e, s, rec := newSources(t, cfg, opts)
	_ = s.Load(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e, s, rec
}

func newSources(t *testing.T, cfg config.Policy, opts SourcesOptions) (*Engine, *Sources, *recorder) {
	t.Helper()
	rec := &recorder{}
	opts.Observer = rec
	e := NewEngine(nil)
	s, err := NewSources(e, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, s, rec
}

func sourceStatus(s *Sources, i int) SourceStatus { return s.Status().Sources[i] }

func TestPolicyDirEditsTakeEffect(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "main.rego", markerModule("v1"))
	writeFile(t, dir, "data.json", `{"marker": "d1"}`)
	e, s, rec := startSources(t, config.Policy{Dir: dir, Debounce: 20 * time.Millisecond}, SourcesOptions{})
	if code, msg, _, err := decide(e); err != nil || code != "v1" || msg != "d1" {
		t.Fatalf("initial decision = %q %q %v", code, msg, err)
	}
	steps := []struct {
		name          string
		files         map[string]string
		code, message string // the decision afterwards
		refused       string // part of the error, when the edit is refused
	}{
		{"ok/a module edit takes effect", map[string]string{"main.rego": markerModule("v2")}, "v2", "d1", ""},
		{"ok/a data edit takes effect", map[string]string{"data.json": `{"marker": "d2"}`}, "v2", "d2", ""},
		{"ok/a module in a new subdirectory takes effect", map[string]string{"lib/extra/suffix.rego": "package tokenguard.main\n\nsuffix := \"+sub\"\n"}, "v2+sub", "d2", ""},
		{"ok/an edit in the new subdirectory takes effect", map[string]string{"lib/extra/suffix.rego": "package tokenguard.main\n\nsuffix := \"+sub2\"\n"}, "v2+sub2", "d2", ""},
		{"fail/a syntax error keeps the old revision", map[string]string{"main.rego": "package tokenguard.main\n\ndecision := {"}, "v2+sub2", "d2", "rego_parse_error"},
		{"fail/an unsafe variable keeps the old revision", map[string]string{"main.rego": markerModule("v3") + "\nbad if { x }\n"}, "v2+sub2", "d2", "rego_unsafe_var_error"},
		{"fail/a policy without the decision keeps the old revision", map[string]string{"main.rego": "package tokenguard.main\n\nmarker := \"v3\"\n"}, "v2+sub2", "d2", "no module defines data.tokenguard.main.decision"},
		{"fail/a broken data file keeps the old revision", map[string]string{"data.json": `{"marker": `}, "v2+sub2", "d2", "data.json"},
		{"fail/malformed policy settings keep the old revision", map[string]string{"data.json": `{"marker": "d3", "pdp": {"token_endpoint": {"url": 7}}}`}, "v2+sub2", "d2", "token_endpoint.url"},
		{"ok/a fix takes effect", map[string]string{"main.rego": markerModule("v3"), "data.json": `{"marker": "d4"}`}, "v3+sub2", "d4", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before, _ := e.Active()
			failures := rec.failures()
			for name, content := range st.files {
				writeFile(t, dir, name, content)
			}
			if st.refused != "" {
				eventually(t, "the edit is refused with "+st.refused, func() bool {
					ss := sourceStatus(s, 0)
					return rec.failures() > failures && ss.State == StateFailed && strings.Contains(ss.LastError, st.refused)
				})
				if after, _ := e.Active(); after.Revision != before.Revision {
					t.Errorf("revision changed from %s to %s on a refused edit", before.Revision, after.Revision)
				}
			}
			var code, msg string
			var err error
			eventually(t, fmt.Sprintf("decision %s/%s", st.code, st.message), func() bool {
				code, msg, _, err = decide(e)
				return err == nil && code == st.code && msg == st.message
			})
			if st.refused == "" {
				eventually(t, "the source is active again", func() bool { return sourceStatus(s, 0).State == StateActive })
			}
		})
	}
	ss := sourceStatus(s, 0)
	if ss.LastSuccess == nil || ss.LastErrorAt == nil || !ss.LastSuccess.After(*ss.LastErrorAt) || ss.Name != KindDir || ss.Location != dir {
		t.Errorf("status after the fix = %+v", ss)
	}
}

// testKey is a bundle signing key pair.
type testKey struct {
	alg     string
	private string // PEM, or the HMAC secret
	public  string // PEM, or the HMAC secret
}

func newTestKey(t testing.TB, alg string) testKey {
	t.Helper()
	var priv any
	var err error
	switch alg[:2] {
	case "ES":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS", "PS":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "Ed":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "HS":
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		s := hex.EncodeToString(secret)
		return testKey{alg: alg, private: s, public: s}
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	return testKey{
		alg:     alg,
		private: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		public:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
	}
}

// verification writes k's public key and returns the config that trusts it.
func (k testKey) verification(t testing.TB) *config.Verification {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle-key")
	if err := os.WriteFile(p, []byte(k.public), 0o600); err != nil {
		t.Fatal(err)
	}
	return &config.Verification{KeyFile: p, KeyID: "default", Algorithm: k.alg}
}

// bundleFiles describes a test bundle.
type bundleFiles struct {
	revision string
	roots    []string // nil: the bundle owns every root
	modules  map[string]string
	data     map[string]any
	// tamper, when set, replaces a module's content after signing.
	tamper map[string]string
}

// markerBundle is markerModule with its data, as a bundle.
func markerBundle(marker, data string) bundleFiles {
	return bundleFiles{
		revision: marker + "/" + data,
		modules:  map[string]string{"/tokenguard/main.rego": markerModule(marker)},
		data:     map[string]any{"marker": data},
	}
}

// tarball builds the bundle as a .tar.gz, signed with key unless key is nil.
func (f bundleFiles) tarball(t testing.TB, key *testKey) []byte {
	t.Helper()
	b := bundle.Bundle{Data: f.data, Manifest: bundle.Manifest{Revision: f.revision}}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	if f.roots != nil {
		roots := slices.Clone(f.roots)
		b.Manifest.Roots = &roots
	}
	for _, p := range slices.Sorted(maps.Keys(f.modules)) {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: p, Path: p, Raw: []byte(f.modules[p])})
	}
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.private, key.alg, ""), "default", false); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range b.Modules {
		if s, ok := f.tamper[m.Path]; ok {
			b.Modules[i].Raw = []byte(s)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bundleService is an httptest bundle service with ETags.
type bundleService struct {
	mu          sync.Mutex
	body        []byte
	etag        string
	status      int // when set, the answer instead of the bundle
	requests    int
	notModified int
	auth        string
}

func (b *bundleService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests++
	b.auth = r.Header.Get("Authorization")
	if b.status != 0 {
		http.Error(w, "unavailable", b.status)
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == b.etag {
		b.notModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", b.etag)
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(b.body)
}

func (b *bundleService) serve(body []byte) {
	sum := sha256.Sum256(body)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.body, b.etag, b.status = body, fmt.Sprintf(`"%x"`, sum[:8]), 0
}

func (b *bundleService) fail(status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = status
}

func (b *bundleService) counts() (requests, notModified int, auth string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests, b.notModified, b.auth
}

func TestBundleServiceUpdatesAndRefusals(t *testing.T) {
	key, other := newTestKey(t, "ES256"), newTestKey(t, "ES256")
	svc := &bundleService{}
	svc.serve(markerBundle("v1", "d1").tarball(t, &key))
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	cred := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(cred, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Policy{
		Bundles: []config.Bundle{{
			Name: "main", URL: srv.URL + "/bundles/main.tar.gz", CredentialsFile: cred,
			PollMin: 5 * time.Millisecond, PollMax: 15 * time.Millisecond,
		}},
		Verification: key.verification(t),
		TestOnLoad:   true,
	}
	e, s, rec := startSources(t, cfg, SourcesOptions{})
	if code, _, _, err := decide(e); err != nil || code != "v1" {
		t.Fatalf("initial decision = %q, %v", code, err)
	}
	if _, _, auth := svc.counts(); auth != "Bearer s3cret" {
		t.Errorf("Authorization = %q, want the credential as a bearer token", auth)
	}

	failingTest := markerBundle("v3", "d3")
	failingTest.modules["/tokenguard/main_test.rego"] = "package tokenguard.main_test\n\nimport data.tokenguard.main\n\ntest_marker if main.marker == \"v2\"\n"
	passingTest := markerBundle("v4", "d4")
	passingTest.modules["/tokenguard/main_test.rego"] = "package tokenguard.main_test\n\nimport data.tokenguard.main\n\ntest_marker if main.marker == \"v4\"\n"
	tampered := markerBundle("v3", "d3")
	tampered.tamper = map[string]string{"/tokenguard/main.rego": markerModule("evil")}
	unsafe := markerBundle("v3", "d3")
	unsafe.modules["/tokenguard/bad.rego"] = "package tokenguard.main\n\nbad if { x }\n"

	steps := []struct {
		name    string
		body    []byte // served from now on; nil keeps the current one
		status  int    // the service's error status instead
		code    string // the decision's code afterwards
		refused string // part of the error when refused
	}{
		{name: "ok/a new ETag brings the new revision", body: markerBundle("v2", "d2").tarball(t, &key), code: "v2"},
		{name: "ok/304 keeps the current revision", code: "v2"},
		{name: "fail/a corrupt bundle", body: []byte("this is not a tarball"), code: "v2", refused: "read bundle main"},
		{name: "fail/an unsigned bundle", body: markerBundle("v3", "d3").tarball(t, nil), code: "v2", refused: "missing .signatures.json"},
		{name: "fail/a bundle signed with another key", body: markerBundle("v3", "d3").tarball(t, &other), code: "v2", refused: "failed to verify"},
		{name: "fail/a file changed after signing", body: tampered.tarball(t, &key), code: "v2", refused: "digest mismatch"},
		{name: "fail/a bundle that does not compile", body: unsafe.tarball(t, &key), code: "v2", refused: "rego_unsafe_var_error"},
		{name: "fail/a bundle whose own tests fail", body: failingTest.tarball(t, &key), code: "v2", refused: "tests of bundle:main: 1 of 1 failed: data.tokenguard.main_test.test_marker"},
		{name: "fail/the bundle service fails", status: http.StatusServiceUnavailable, code: "v2", refused: "503"},
		{name: "ok/a good bundle after failures, its tests passing", body: passingTest.tarball(t, &key), code: "v4"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before, _ := e.Active()
			failures := rec.failures()
			_, notModified, _ := svc.counts()
			switch {
			case st.status != 0:
				svc.fail(st.status)
			case st.body != nil:
				svc.serve(st.body)
			}
			switch {
			case st.refused != "":
				eventually(t, "the bundle is refused with "+st.refused, func() bool {
					ss := sourceStatus(s, 0)
					return rec.failures() > failures && ss.State == StateFailed && strings.Contains(ss.LastError, st.refused)
				})
				if after, _ := e.Active(); after.Revision != before.Revision {
					t.Errorf("revision changed from %s to %s", before.Revision, after.Revision)
				}
			case st.body == nil:
				eventually(t, "two polls answered 304", func() bool {
					_, n, _ := svc.counts()
					return n >= notModified+2
				})
				if after, _ := e.Active(); after.Revision != before.Revision || rec.failures() != failures {
					t.Errorf("a 304 changed the revision (%s to %s) or failed", before.Revision, after.Revision)
				}
			default:
				eventually(t, "the revision changes", func() bool {
					after, _ := e.Active()
					return after.Revision != before.Revision && sourceStatus(s, 0).State == StateActive
				})
			}
			if code, _, _, err := decide(e); err != nil || code != st.code {
				t.Errorf("decision = %q, %v; want %q", code, err, st.code)
			}
		})
	}
	st := s.Status()
	if st.Active == nil || st.Active.Source != "bundle:main" || st.Sources[0].Revision != "v4/d4" || st.Sources[0].LastError == "" {
		t.Errorf("status = %+v", st)
	}
	if len(rec.activated) != 3 || !strings.HasPrefix(rec.activated[0], "main@") {
		t.Errorf("observer heard activations %v, want 3 from main", rec.activated)
	}
}

func TestLocalBundlesAreWatched(t *testing.T) {
	tests := []struct {
		name string
		// write puts a bundle at path; it returns the path to configure.
		write func(t *testing.T, dir string, f bundleFiles) string
	}{
		{"ok/a .tar.gz file replaced", func(t *testing.T, dir string, f bundleFiles) string {
			writeFile(t, dir, "main.tar.gz", string(f.tarball(t, nil)))
			return filepath.Join(dir, "main.tar.gz")
		}},
		{"ok/a bundle directory edited", func(t *testing.T, dir string, f bundleFiles) string {
			root := filepath.Join(dir, "main")
			for p, src := range f.modules {
				writeFile(t, root, p, src)
			}
			data, _ := json.Marshal(f.data)
			writeFile(t, root, "data.json", string(data))
			writeFile(t, root, ".manifest", `{"revision": "`+f.revision+`"}`)
			return root
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.write(t, dir, markerBundle("v1", "d1"))
			cfg := config.Policy{Bundles: []config.Bundle{{Name: "main", Path: path}}, Debounce: 20 * time.Millisecond}
			e, s, _ := startSources(t, cfg, SourcesOptions{})
			if code, _, _, err := decide(e); err != nil || code != "v1" {
				t.Fatalf("initial decision = %q, %v", code, err)
			}
			tt.write(t, dir, markerBundle("v2", "d2"))
			eventually(t, "v2 serves", func() bool {
				code, msg, _, err := decide(e)
				return err == nil && code == "v2" && msg == "d2" && sourceStatus(s, 0).Revision == "v2/d2"
			})
			broken := markerBundle("v3", "d3")
			broken.modules["/tokenguard/main.rego"] = "package tokenguard.main\n\ndecision := {"
			tt.write(t, dir, broken)
			eventually(t, "the broken bundle is refused", func() bool { return sourceStatus(s, 0).State == StateFailed })
			if code, _, _, err := decide(e); err != nil || code != "v2" {
				t.Errorf("decision after a refused bundle = %q, %v; want v2", code, err)
			}
		})
	}
}

func TestSeveralBundlesMakeOnePolicy(t *testing.T) {
	dir := t.TempDir()
	policyPath, dataPath := filepath.Join(dir, "policy.tar.gz"), filepath.Join(dir, "data.tar.gz")
	put := func(path string, f bundleFiles) {
		t.Helper()
		writeFile(t, dir, filepath.Base(path), string(f.tarball(t, nil)))
	}
	policyBundle := bundleFiles{
		revision: "p1", roots: []string{"tokenguard"},
		modules: map[string]string{"/policy.rego": markerModule("v1")},
	}
	dataBundle := func(marker string, roots ...string) bundleFiles {
		return bundleFiles{
			revision: marker, roots: roots, data: map[string]any{"marker": marker},
			modules: map[string]string{"/policy.rego": "package extra\n\nx := 1\n"},
		}
	}
	put(policyPath, policyBundle)
	cfg := config.Policy{Bundles: []config.Bundle{{Name: "policy", Path: policyPath}, {Name: "data", Path: dataPath}}}
	e, s, _ := newSources(t, cfg, SourcesOptions{})
	ctx := context.Background()

	steps := []struct {
		name    string
		bundle  int // the source that changes
		content bundleFiles
		states  [2]string
		code    string // the decision afterwards; "" when none serves
		message string
	}{
		{"ok/the first bundle waits for the second", 0, policyBundle, [2]string{StateWaiting, StateLoading}, "", ""},
		{"ok/both bundles serve together, the same module path in each", 1, dataBundle("d1", "marker", "extra"), [2]string{StateActive, StateActive}, "v1", "d1"},
		{"fail/overlapping roots are refused", 1, dataBundle("d2", "marker", "extra", "tokenguard/main"), [2]string{StateActive, StateFailed}, "v1", "d1"},
		{"fail/a bundle without roots overlaps everything", 1, dataBundle("d2"), [2]string{StateActive, StateFailed}, "v1", "d1"},
		{"ok/a data-only change", 1, dataBundle("d3", "marker", "extra"), [2]string{StateActive, StateActive}, "v1", "d3"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			path := []string{policyPath, dataPath}[st.bundle]
			put(path, st.content)
			s.refresh(ctx, s.sources[st.bundle])
			status := s.Status()
			if got := [2]string{status.Sources[0].State, status.Sources[1].State}; got != st.states {
				t.Errorf("states = %v, want %v (errors %q, %q)", got, st.states, status.Sources[0].LastError, status.Sources[1].LastError)
			}
			code, msg, _, err := decide(e)
			if st.code == "" {
				if !errors.Is(err, ErrNoPolicy) {
					t.Errorf("a policy serves before every bundle loaded: %q, %v", code, err)
				}
				return
			}
			if err != nil || code != st.code || msg != st.message {
				t.Errorf("decision = %q %q %v, want %q %q", code, msg, err, st.code, st.message)
			}
			if status.Active == nil || status.Active.Source != "bundles:policy,data" {
				t.Errorf("active = %+v", status.Active)
			}
		})
	}
}

// TestDecisionsDuringSwapsComeFromOneVersion evaluates from many goroutines
// while the bundle service's bundle changes 50 times: no evaluation fails,
// and each sees the module and the data of the same version.
func TestDecisionsDuringSwapsComeFromOneVersion(t *testing.T) {
	key := newTestKey(t, "ES256")
	svc := &bundleService{}
	svc.serve(markerBundle("m0", "m0").tarball(t, &key))
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	cfg := config.Policy{
		Bundles:      []config.Bundle{{Name: "main", URL: srv.URL + "/main.tar.gz", PollMin: time.Hour}},
		Verification: key.verification(t),
	}
	e, s, rec := newSources(t, cfg, SourcesOptions{})
	ctx := context.Background()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	markers := map[string]string{} // revision -> marker
	record := func(marker string) {
		info, _ := e.Active()
		mu.Lock()
		markers[info.Revision] = marker
		mu.Unlock()
	}
	record("m0")
	type seen struct{ code, message, revision string }
	stop := make(chan struct{})
	results := make(chan map[seen]int)
	errs := make(chan error, 16)
	for range 8 {
		go func() {
			out := map[seen]int{}
			for {
				select {
				case <-stop:
					results <- out
					return
				default:
				}
				code, msg, rev, err := decide(e)
				if err != nil {
					errs <- err
					results <- out
					return
				}
				out[seen{code, msg, rev}]++
			}
		}()
	}
	const swaps = 50
	for i := 1; i <= swaps; i++ {
		marker := fmt.Sprintf("m%d", i)
		svc.serve(markerBundle(marker, marker).tarball(t, &key))
		s.refresh(ctx, s.sources[0])
		record(marker)
	}
	close(stop)
	all := map[seen]int{}
	for range 8 {
		for r, n := range <-results {
			all[r] += n
		}
	}
	close(errs)
	for err := range errs {
		t.Errorf("evaluation during a swap failed: %v", err)
	}
	if n := len(rec.activated); n != swaps+1 || rec.failures() != 0 {
		t.Fatalf("%d activations and %d failures, want %d and 0: %v", n, rec.failures(), swaps+1, rec.failed)
	}
	decisions := 0
	for r, n := range all {
		if r.code != r.message || markers[r.revision] != r.code {
			t.Fatalf("a decision mixes versions: module %s, data %s, revision %s (of %s)", r.code, r.message, r.revision, markers[r.revision])
		}
		decisions += n
	}
	t.Logf("%d decisions saw %d versions", decisions, len(all))
}

func TestTestOnLoad(t *testing.T) {
	failing := t.TempDir()
	writeFile(t, failing, "main.rego", markerModule("v1"))
	writeFile(t, failing, "main_test.rego", "package tokenguard.main_test\n\nimport data.tokenguard.main\n\ntest_a if main.marker == \"v1\"\n\ntest_b if main.marker == \"v2\"\n\ntest_c if 1 / 0\n")
	tests := []struct {
		name       string
		dir        string
		testOnLoad bool
		refused    string
	}{
		{"ok/the shipped policies pass their own tests", "../../rego", true, ""},
		{"fail/a failing test refuses the policy", failing, true, "2 of 3 failed: data.tokenguard.main_test.test_b; data.tokenguard.main_test.test_c"},
		{"ok/without test_on_load tests are not run", failing, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, s, _ := newSources(t, config.Policy{Dir: tt.dir, TestOnLoad: tt.testOnLoad}, SourcesOptions{})
			err := s.Load(context.Background())
			if tt.refused == "" {
				if err != nil || e.Ready() != nil {
					t.Fatalf("Load = %v", err)
				}
				return
			}
			var tf *TestsFailedError
			if !errors.Is(err, ErrNoPolicy) || e.Ready() == nil || !strings.Contains(err.Error(), tt.refused) {
				t.Fatalf("Load = %v, want no policy and %q", err, tt.refused)
			}
			if st := s.Status(); st.Active != nil || !strings.Contains(st.Sources[0].LastError, tt.refused) {
				t.Errorf("status = %+v", st)
			}
			if _, err := LoadDir(tt.dir, Limits{}); err != nil {
				t.Fatal(err)
			}
			set, _ := LoadDir(tt.dir, Limits{})
			if err := runTests(context.Background(), set); !errors.As(err, &tf) || tf.Total != 3 || len(tf.Failed) != 2 {
				t.Errorf("runTests = %v", err)
			}
		})
	}
}

func TestVerificationConfig(t *testing.T) {
	rsaKey, ecKey, edKey := newTestKey(t, "RS256"), newTestKey(t, "ES256"), newTestKey(t, "EdDSA")
	write := func(content string) string {
		p := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, alg, key, want string
	}{
		{"ok/RSA public key for RS256", "RS256", rsaKey.public, ""},
		{"ok/RSA public key for PS384", "PS384", rsaKey.public, ""},
		{"ok/P-256 public key for ES256", "ES256", ecKey.public, ""},
		{"ok/Ed25519 public key for EdDSA", "EdDSA", edKey.public, ""},
		{"ok/HMAC secret of 32 bytes", "HS256", strings.Repeat("k", 32), ""},
		{"fail/private key instead of the public one", "RS256", rsaKey.private, "holds a private key"},
		{"fail/EC key for RS256", "RS256", ecKey.public, "does not fit algorithm RS256"},
		{"fail/P-256 key for ES384", "ES384", ecKey.public, "does not fit algorithm ES384"},
		{"fail/short HMAC secret", "HS256", "short", "at least 32 bytes"},
		{"fail/not PEM", "ES256", "hello", "no PEM block"},
		{"fail/unknown algorithm", "none", ecKey.public, "is not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSources(NewEngine(nil), config.Policy{
				Bundles:      []config.Bundle{{Name: "b", Path: "unused"}},
				Verification: &config.Verification{KeyFile: write(tt.key), Algorithm: tt.alg, KeyID: "default"},
			}, SourcesOptions{})
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("NewSources error = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("fail/verification with policy.dir", func(t *testing.T) {
		_, err := NewSources(NewEngine(nil), config.Policy{Dir: t.TempDir(), Verification: ecKey.verification(t)}, SourcesOptions{})
		if err == nil {
			t.Error("verification was accepted for an unsigned policy directory")
		}
	})
}

func TestSignedBundlesVerifyWithEachAlgorithm(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA", "HS256"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			key := newTestKey(t, alg)
			path := filepath.Join(t.TempDir(), "b.tar.gz")
			if err := os.WriteFile(path, markerBundle("v1", "d1").tarball(t, &key), 0o600); err != nil {
				t.Fatal(err)
			}
			v := key.verification(t)
			e, s, _ := newSources(t, config.Policy{Bundles: []config.Bundle{{Name: "b", Path: path}}, Verification: v}, SourcesOptions{})
			if err := s.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if code, _, _, err := decide(e); err != nil || code != "v1" {
				t.Errorf("decision = %q, %v", code, err)
			}
			v.Scope = "write"
			_, s, _ = newSources(t, config.Policy{Bundles: []config.Bundle{{Name: "b", Path: path}}, Verification: v}, SourcesOptions{})
			if err := s.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "scope mismatch") {
				t.Errorf("a bundle signed without scope loaded under scope write: %v", err)
			}
		})
	}
}

func TestStatusWithoutPolicy(t *testing.T) {
	svc := &bundleService{status: http.StatusNotFound}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	e, s, rec := newSources(t, config.Policy{Bundles: []config.Bundle{{Name: "remote", URL: srv.URL + "/b?token=x"}}}, SourcesOptions{})
	if err := s.Load(context.Background()); !errors.Is(err, ErrNoPolicy) || e.Ready() == nil {
		t.Fatalf("Load = %v", err)
	}
	b, err := json.Marshal(s.Status())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Active  any `json:"active"`
		Sources []map[string]any
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	src := got.Sources[0]
	if got.Active != nil || src["name"] != "remote" || src["kind"] != "bundle" || src["state"] != "failed" ||
		!strings.Contains(src["last_error"].(string), "404") || src["last_error_at"] == nil || src["last_success"] != nil ||
		strings.Contains(src["location"].(string), "token") {
		t.Errorf("status = %s", b)
	}
	if rec.failures() != 1 {
		t.Errorf("observer heard %d failures, want 1", rec.failures())
	}
}

func TestPolicyDirReplacedAsAWholeIsWatchedAgain(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "policy")
	writeFile(t, dir, "main.rego", markerModule("v1"))
	writeFile(t, dir, "data.json", `{"marker": "d1"}`)
	e, _, _ := startSources(t, config.Policy{Dir: dir, Debounce: 20 * time.Millisecond}, SourcesOptions{})
	next := filepath.Join(parent, "next")
	writeFile(t, next, "main.rego", markerModule("v2"))
	writeFile(t, next, "data.json", `{"marker": "d2"}`)
	if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new directory serves", func() bool {
		code, msg, _, err := decide(e)
		return err == nil && code == "v2" && msg == "d2"
	})
	writeFile(t, dir, "main.rego", markerModule("v3"))
	eventually(t, "an edit in the new directory takes effect", func() bool {
		code, _, _, err := decide(e)
		return err == nil && code == "v3"
	})
}
