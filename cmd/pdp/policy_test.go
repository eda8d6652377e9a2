package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/policy"
)

// The example bundle in bundles/, built from rego/ and signed with a
// throwaway key whose public half sits beside it.
const (
	shippedBundle    = "../../bundles/tokenguard.tar.gz"
	shippedPublicKey = "../../bundles/tokenguard.pub.pem"
)

// loadBundle loads one bundle file through the policy sources, verified
// with the public key in keyFile, its own tests run.
func loadBundle(t *testing.T, path, keyFile, alg string) (*policy.Engine, *policy.Sources, error) {
	t.Helper()
	e := policy.NewEngine(nil)
	s, err := policy.NewSources(e, config.Policy{
		Bundles:      []config.Bundle{{Name: "tokenguard", Path: path}},
		Verification: &config.Verification{KeyFile: keyFile, KeyID: "default", Algorithm: alg},
		TestOnLoad:   true,
	}, policy.SourcesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e, s, s.Load(context.Background())
}

// TestShippedBundleVerifiesWithTheShippedKey checks the signature of the
// example bundle, that it compiles and that its own tests pass. It is a
// build of rego/ (TestShippedBundleMatchesRego); when this test fails,
// rebuild and re-sign it with `go tool task bundle` (a new throwaway key,
// its public half in bundles/tokenguard.pub.pem).
func TestShippedBundleVerifiesWithTheShippedKey(t *testing.T) {
	e, s, err := loadBundle(t, shippedBundle, shippedPublicKey, "RS256")
	if err != nil {
		t.Fatalf("the shipped bundle does not load (rebuild it: go tool task bundle): %v", err)
	}
	if err := e.Ready(); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Active == nil || st.Active.Source != "bundle:tokenguard" || st.Sources[0].Revision == "" {
		t.Errorf("status = %+v", st)
	}
	b, err := os.ReadFile(shippedPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "PRIVATE") {
		t.Fatal("bundles/ holds a private key")
	}
}

// writeKeyPair writes a fresh signing key for alg (PEM, as openssl writes
// it; for HS256 a random secret) and what verifies it; it returns both
// paths.
func writeKeyPair(t *testing.T, alg string) (private, public string) {
	t.Helper()
	dir := t.TempDir()
	private, public = filepath.Join(dir, "private.pem"), filepath.Join(dir, "public.pem")
	var privPEM, pubPEM []byte
	if alg == "HS256" {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		privPEM = []byte(hex.EncodeToString(secret))
		pubPEM = privPEM
	} else {
		var key crypto.Signer
		var err error
		if alg == "ES256" {
			key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		} else {
			key, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		privPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	}
	if err := os.WriteFile(private, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return private, public
}

// TestBundleBuildAndSignRoundTrip runs the build-and-sign command of docs/policies.md
// (`pdp opa build -b rego/ --signing-key ...`) and loads the result the way
// serve does: verified, compiled, its own tests run.
func TestBundleBuildAndSignRoundTrip(t *testing.T) {
	out := t.TempDir()
	t.Chdir("../..") // the documented commands run from the repository root
	for _, alg := range []string{"RS256", "ES256", "HS256"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			private, public := writeKeyPair(t, alg)
			bundlePath := filepath.Join(out, alg+".tar.gz")
			if code := run([]string{"opa", "build", "-b", "rego/", "--signing-key", private, "--signing-alg", alg,
				"--revision", "r-" + alg, "-o", bundlePath}); code != 0 {
				t.Fatalf("pdp opa build exited %d", code)
			}
			e, s, err := loadBundle(t, bundlePath, public, alg)
			if err != nil || e.Ready() != nil {
				t.Fatalf("the built bundle does not load: %v", err)
			}
			if got := s.Status().Sources[0].Revision; got != "r-"+alg {
				t.Errorf("revision = %q, want r-%s", got, alg)
			}
			_, otherPublic := writeKeyPair(t, alg)
			if _, _, err := loadBundle(t, bundlePath, otherPublic, alg); err == nil || !strings.Contains(err.Error(), "failed to verify") {
				t.Errorf("verified with another key: %v", err)
			}
		})
	}
	t.Run("ok/scope from a claims file", func(t *testing.T) {
		private, public := writeKeyPair(t, "ES256")
		claims := filepath.Join(t.TempDir(), "claims.json")
		if err := os.WriteFile(claims, []byte(`{"scope": "write"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		bundlePath := filepath.Join(out, "scoped.tar.gz")
		if code := run([]string{"opa", "build", "-b", "rego/", "--signing-key", private, "--signing-alg", "ES256",
			"--claims-file", claims, "-o", bundlePath}); code != 0 {
			t.Fatalf("pdp opa build exited %d", code)
		}
		for scope, want := range map[string]string{"write": "", "": "scope mismatch", "read": "scope mismatch"} {
			e := policy.NewEngine(nil)
			s, err := policy.NewSources(e, config.Policy{
				Bundles:      []config.Bundle{{Name: "tokenguard", Path: bundlePath}},
				Verification: &config.Verification{KeyFile: public, KeyID: "default", Algorithm: "ES256", Scope: scope},
			}, policy.SourcesOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Load(context.Background())
			if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("scope %q: Load = %v, want %q", scope, err, want)
			}
		}
	})
	t.Run("ok/policy and data in two bundles", func(t *testing.T) {
		private, public := writeKeyPair(t, "ES256")
		policySrc, dataSrc := filepath.Join(t.TempDir(), "policy"), filepath.Join(t.TempDir(), "data")
		if err := os.CopyFS(policySrc, os.DirFS("rego")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dataSrc, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(policySrc, "data.json"), filepath.Join(dataSrc, "data.json")); err != nil {
			t.Fatal(err)
		}
		var bundles []config.Bundle
		for name, src := range map[string]string{"policy": policySrc, "data": dataSrc} {
			roots := map[string]string{"policy": "tokenguard", "data": "pdp"}[name]
			if err := os.WriteFile(filepath.Join(src, ".manifest"), []byte(`{"roots": ["`+roots+`"]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			bundlePath := filepath.Join(out, name+".tar.gz")
			if code := run([]string{"opa", "build", "-b", src, "--signing-key", private, "--signing-alg", "ES256", "-o", bundlePath}); code != 0 {
				t.Fatalf("pdp opa build %s exited %d", name, code)
			}
			bundles = append(bundles, config.Bundle{Name: name, Path: bundlePath})
		}
		e := policy.NewEngine(nil)
		s, err := policy.NewSources(e, config.Policy{
			Bundles:      bundles,
			Verification: &config.Verification{KeyFile: public, KeyID: "default", Algorithm: "ES256"},
			TestOnLoad:   true,
		}, policy.SourcesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Load(context.Background()); err != nil {
			t.Fatalf("two bundles do not make a policy: %v", err)
		}
		if got := e.Settings().TokenEndpoint; got == "" {
			t.Error("the data bundle's data.pdp did not reach the policy")
		}
	})
	t.Run("fail/unsigned build", func(t *testing.T) {
		_, public := writeKeyPair(t, "ES256")
		bundlePath := filepath.Join(out, "unsigned.tar.gz")
		if code := run([]string{"opa", "build", "-b", "rego/", "-o", bundlePath}); code != 0 {
			t.Fatalf("pdp opa build exited %d", code)
		}
		if _, _, err := loadBundle(t, bundlePath, public, "ES256"); err == nil || !strings.Contains(err.Error(), "missing .signatures.json") {
			t.Errorf("an unsigned bundle loaded: %v", err)
		}
	})
}

// TestServeLoadsPolicyBundles wires bundles through newApp: a signed
// bundle makes the PDP ready; a bundle that fails verification leaves
// /readyz at 503.
func TestServeLoadsPolicyBundles(t *testing.T) {
	_, otherKey := writeKeyPair(t, "RS256")
	tests := []struct {
		name      string
		keyFile   string
		wantReady int
	}{
		{"ok/the shipped signed bundle serves", shippedPublicKey, http.StatusOK},
		{"fail/a bundle signed by someone else is refused", otherKey, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.DataDir = t.TempDir()
			cfg.Policy.Dir = ""
			cfg.Policy.Bundles = []config.Bundle{{Name: "tokenguard", Path: shippedBundle}}
			cfg.Policy.Verification = &config.Verification{KeyFile: tt.keyFile}
			iss, err := devissuer.New("https://as.example.com", "ES256")
			if err != nil {
				t.Fatal(err)
			}
			jwks := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(jwks, iss.JWKS(), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg.Issuers = []config.Issuer{{Issuer: iss.URL(), JWKSFile: jwks, Audiences: []string{testAudience}}}
			cfg.ApplyDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := newApp(t.Context(), cfg, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			srv := httptest.NewServer(a.handler)
			t.Cleanup(srv.Close)
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantReady {
				t.Errorf("/readyz = %d, want %d (status %+v)", resp.StatusCode, tt.wantReady, a.sources.Status())
			}
		})
	}
}
