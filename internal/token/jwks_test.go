package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/keycheck/keychecktest"
)

// singleIssuer builds a verifier for one jwks_uri issuer served by srv.
func singleIssuer(t *testing.T, srv *jwksServer, clk *clock) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer: issA, JWKSURI: srv.URL, Audiences: []string{apiAud}, Algorithms: []string{"ES256"}, JWKSRefresh: time.Hour,
	}}, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randomKid(i int) string { return fmt.Sprintf("kid-%d-%x", i, time.Now().UnixNano()) }

func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	srv := newJWKSServer(t, a.JWKS())
	clk := &clock{t: testNow}
	v := singleIssuer(t, srv, clk)
	ctx := context.Background()

	// First use loads the keys (one fetch).
	if _, err := v.Verify(ctx, mint(t, a, nil)); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("initial fetches = %d, want 1", n)
	}

	// Sequential flood of made-up kids within 30 s: no fetch at all (the
	// last fetch was less than 30 s ago).
	for i := range 200 {
		raw := mint(t, a, nil, devissuer.WithHeader("kid", randomKid(i)))
		_, err := v.Verify(ctx, raw)
		wantCode(t, raw, nil, err, CodeSignatureInvalid)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("fetches after a flood of unknown kids = %d, want 1", n)
	}

	// 31 s later, one more fetch is allowed, and only one, even for a
	// concurrent flood.
	clk.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for i := range 50 {
		raw := mint(t, a, nil, devissuer.WithHeader("kid", randomKid(1000+i)))
		wg.Go(func() {
			_, err := v.Verify(ctx, raw)
			if e, ok := err.(*Error); !ok || e.Code != CodeSignatureInvalid {
				t.Errorf("Verify() = %v", err)
			}
		})
	}
	wg.Wait()
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetches after a concurrent flood 31 s later = %d, want 2", n)
	}
}

func TestConcurrentMissesShareOneFetch(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	release := make(chan struct{})
	var n int64
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		<-release // hold the fetch open while the misses pile up
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(a.JWKS())
	}))
	defer srv.Close()
	v := singleIssuer(t, &jwksServer{Server: srv}, &clock{t: testNow})

	var wg sync.WaitGroup
	for range 20 {
		raw := mint(t, a, nil)
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), raw); err != nil {
				t.Errorf("Verify() = %v", err)
			}
		})
	}
	// Let the goroutines reach the shared fetch, then release it.
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return n >= 1 })
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

func TestKeyRotation(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	srv := newJWKSServer(t, a.JWKS())
	clk := &clock{t: testNow}
	v := singleIssuer(t, srv, clk)
	ctx := context.Background()
	old := mint(t, a, nil)
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal(err)
	}

	// The issuer rotates to a new key and drops the old one.
	b := newIssuer(t, issA, "ES256")
	srv.set(b.JWKS(), 0, "")
	clk.Advance(31 * time.Second)
	fresh := mint(t, b, nil)
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Fatalf("token signed with the new key: %v", err)
	}
	// The old token was cached, but its key is gone: refused.
	_, err := v.Verify(ctx, old)
	wantCode(t, old, nil, err, CodeSignatureInvalid)
}

func TestFailedRefreshKeepsKeys(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	srv := newJWKSServer(t, a.JWKS())
	clk := &clock{t: testNow}
	v := singleIssuer(t, srv, clk)
	ctx := context.Background()
	if _, err := v.Verify(ctx, mint(t, a, nil)); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name        string
		doc         []byte
		status      int
		contentType string
	}{
		{"server error", []byte(`oops`), 500, ""},
		{"html", []byte(`<html></html>`), 200, "text/html"},
		{"not JSON", []byte(`{"keys":[`), 200, ""},
		{"larger than 1 MiB", []byte(`{"keys":[],"x":"` + strings.Repeat("a", 1<<20) + `"}`), 200, ""},
		{"no usable key", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), 200, ""},
		{"duplicate members", []byte(`{"keys":[],"keys":[]}`), 200, ""},
		{"private key", privateJWKS(t), 200, ""},
	}
	for _, b := range bad {
		srv.set(b.doc, b.status, b.contentType)
		if err := v.refresh(ctx, v.issuers[0], false); err == nil {
			t.Errorf("%s: refresh succeeded", b.name)
		}
		if _, err := v.Verify(ctx, mint(t, a, nil)); err != nil {
			t.Errorf("%s: old keys lost: %v", b.name, err)
		}
	}
}

func privateJWKS(t testing.TB) []byte {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []any{k}})
	return doc
}

func TestRedirectToAnotherHostIsNotFollowed(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	other, otherHits := counter(t)
	redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/jwks", http.StatusFound))
	defer redirect.Close()
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer: issA, JWKSURI: redirect.URL, Audiences: []string{apiAud}, Algorithms: []string{"ES256"},
	}}, Options{Now: (&clock{t: testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.refresh(context.Background(), v.issuers[0], false); err == nil || !strings.Contains(err.Error(), "302") {
		t.Fatalf("refresh error = %v, want a 302 refusal", err)
	}
	_ = a
	if n := otherHits.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

func TestRunAndReady(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	srv := newJWKSServer(t, nil)
	srv.set([]byte("unavailable"), 503, "text/plain")
	v, err := NewVerifier(context.Background(), []config.Issuer{
		{Issuer: issA, JWKSURI: srv.URL, Audiences: []string{apiAud}, JWKSRefresh: 20 * time.Millisecond},
		{Issuer: issEd, JWKSFile: writeFile(t, "ed.json", newIssuer(t, issEd, "EdDSA").JWKS()), Audiences: []string{apiAud}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), issA) || strings.Contains(err.Error(), issEd) {
		t.Fatalf("Ready() before Run = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()

	// The first fetch fails; Run retries with backoff and then loads.
	waitFor(t, func() bool { return srv.hits.Load() >= 1 })
	srv.set(a.JWKS(), 0, "")
	waitFor(t, func() bool { return v.Ready() == nil })
	// And keeps refreshing on schedule.
	n := srv.hits.Load()
	waitFor(t, func() bool { return srv.hits.Load() >= n+2 })
	cancel()
	<-done
	if _, err := v.Verify(context.Background(), mint(t, a, map[string]any{
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(time.Minute).Unix(),
	})); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond; it fails the test only if cond never holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never became true")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseKeySet(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	strong, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	jwkOf := func(raw any, set map[string]any) map[string]any {
		k, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range set {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.Marshal(k)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	doc := func(keys ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	good := jwkOf(&ec.PublicKey, map[string]any{"kid": "good"})

	tests := []struct {
		name    string
		doc     []byte
		usable  []string // kids
		wantErr error
	}{
		{"ok/public EC key", doc(good), []string{"good"}, nil},
		{"ok/Ed25519 key", doc(jwkOf(edPub, map[string]any{"kid": "ed"})), []string{"ed"}, nil},
		{"ok/unknown key types are skipped", doc(good, map[string]any{"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA", "kid": "pq"}), []string{"good"}, nil},
		{"skip/use enc", doc(good, jwkOf(&ec.PublicKey, map[string]any{"kid": "enc", "use": "enc"})), []string{"good"}, nil},
		{"skip/key_ops without verify", doc(good, jwkOf(&ec.PublicKey, map[string]any{"kid": "ops", "key_ops": jwk.KeyOperationList{jwk.KeyOpEncrypt}})), []string{"good"}, nil},
		{"skip/alg that does not fit the key", doc(good, jwkOf(&ec.PublicKey, map[string]any{"kid": "es384", "alg": jwa.ES384()})), []string{"good"}, nil},
		{"skip/alg that is not a signature algorithm", doc(good, jwkOf(&ec.PublicKey, map[string]any{"kid": "ecdh", "alg": jwa.ECDH_ES()})), []string{"good"}, nil},
		{"skip/RSA 1024", doc(good, map[string]any{"kty": "RSA", "kid": "weak", "e": "AQAB",
			"n": base64.RawURLEncoding.EncodeToString(weak.N.Bytes())}), []string{"good"}, nil},
		{"skip/oct key", doc(good, map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}), []string{"good"}, nil},
		{"refuse/RSA key with the ROCA fingerprint", doc(good, keychecktest.RSAJWK(keychecktest.ROCA().N, 65537, "roca", "RS256")), []string{"good"}, nil},
		{"refuse/RSA exponent 1", doc(good, keychecktest.RSAJWK(strong.N, 1, "e1", "RS256")), []string{"good"}, nil},
		{"refuse/Ed25519 key of small order", doc(good, keychecktest.SmallOrderEd25519("small")), []string{"good"}, nil},
		{"fail/private EC key", privateJWKS(t), nil, ErrPrivateKeyInJWKS},
		{"fail/private RSA key", doc(good, jwkOf(strong, nil)), nil, ErrPrivateKeyInJWKS},
		{"fail/only unusable keys", doc(map[string]any{"kty": "oct", "k": "c2VjcmV0"}), nil, nil},
		{"fail/single JWK instead of a set", func() []byte { b, _ := json.Marshal(good); return b }(), nil, nil},
		{"fail/keys not an array", []byte(`{"keys":{}}`), nil, nil},
		{"fail/too many keys", doc(func() []map[string]any {
			var ks []map[string]any
			for range 101 {
				ks = append(ks, good)
			}
			return ks
		}()...), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, skipped, err := parseKeySet(tt.doc)
			if tt.usable == nil {
				if err == nil {
					t.Fatal("parseKeySet succeeded")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kids []string
			for _, k := range ks.keys {
				kids = append(kids, k.kid)
			}
			if strings.Join(kids, ",") != strings.Join(tt.usable, ",") {
				t.Fatalf("usable keys = %v, want %v", kids, tt.usable)
			}
			if strings.HasPrefix(tt.name, "refuse/") && (len(skipped) != 1 || skipped[0].KID == "") {
				t.Fatalf("skipped = %+v, want the refused key named", skipped)
			}
		})
	}
}

func TestKeyFits(t *testing.T) {
	algs := config.SupportedAlgorithms
	keys := map[string]*verifyKey{
		"RSA":            {kty: "RSA"},
		"P-256":          {kty: "EC", curve: "P-256"},
		"P-384":          {kty: "EC", curve: "P-384"},
		"P-521":          {kty: "EC", curve: "P-521"},
		"Ed25519":        {kty: "OKP", curve: "Ed25519"},
		"RSA/RS256 only": {kty: "RSA", alg: "RS256"},
	}
	want := map[string][]string{
		"RSA":            {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		"P-256":          {"ES256"},
		"P-384":          {"ES384"},
		"P-521":          {"ES512"},
		"Ed25519":        {"EdDSA"},
		"RSA/RS256 only": {"RS256"},
	}
	for name, k := range keys {
		var got []string
		for _, alg := range append(algs, "HS256", "none", "es256") {
			if k.fits(alg) {
				got = append(got, alg)
			}
		}
		if strings.Join(got, ",") != strings.Join(want[name], ",") {
			t.Errorf("%s fits %v, want %v", name, got, want[name])
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	jwks := writeFile(t, "jwks.json", newIssuer(t, issA, "ES256").JWKS())
	secret := writeFile(t, "secret", []byte("s3cret\n"))
	empty := writeFile(t, "empty", []byte("\n"))
	base := func() config.Issuer {
		return config.Issuer{Issuer: issA, JWKSFile: jwks, Audiences: []string{apiAud}}
	}
	intro := &config.Introspection{Endpoint: "http://127.0.0.1:1/introspect", ClientID: "pdp", ClientSecretFile: secret}
	tests := []struct {
		name    string
		issuers func() []config.Issuer
	}{
		{"fail/no issuers", func() []config.Issuer { return nil }},
		{"fail/HS256 on the allow-list", func() []config.Issuer {
			is := base()
			is.Algorithms = []string{"ES256", "HS256"}
			return []config.Issuer{is}
		}},
		{"fail/none on the allow-list", func() []config.Issuer {
			is := base()
			is.Algorithms = []string{"none"}
			return []config.Issuer{is}
		}},
		{"fail/duplicate issuer", func() []config.Issuer { return []config.Issuer{base(), base()} }},
		{"fail/no audiences", func() []config.Issuer {
			is := base()
			is.Audiences = nil
			return []config.Issuer{is}
		}},
		{"fail/missing jwks file", func() []config.Issuer {
			is := base()
			is.JWKSFile = jwks + ".missing"
			return []config.Issuer{is}
		}},
		{"fail/jwks file with a private key", func() []config.Issuer {
			is := base()
			is.JWKSFile = writeFile(t, "priv.json", privateJWKS(t))
			return []config.Issuer{is}
		}},
		{"fail/no key source", func() []config.Issuer {
			is := base()
			is.JWKSFile = ""
			return []config.Issuer{is}
		}},
		{"fail/two introspecting issuers", func() []config.Issuer {
			a, b := base(), base()
			b.Issuer = issRSA
			a.Introspection, b.Introspection = intro, intro
			return []config.Issuer{a, b}
		}},
		{"fail/missing client secret file", func() []config.Issuer {
			is := base()
			is.Introspection = &config.Introspection{Endpoint: intro.Endpoint, ClientID: "pdp", ClientSecretFile: secret + ".missing"}
			return []config.Issuer{is}
		}},
		{"fail/empty client secret", func() []config.Issuer {
			is := base()
			is.Introspection = &config.Introspection{Endpoint: intro.Endpoint, ClientID: "pdp", ClientSecretFile: empty}
			return []config.Issuer{is}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(context.Background(), tt.issuers(), Options{}); err == nil {
				t.Fatal("NewVerifier succeeded")
			}
		})
	}
	t.Run("ok/introspection secret trimmed", func(t *testing.T) {
		is := base()
		is.Introspection = intro
		v, err := NewVerifier(context.Background(), []config.Issuer{is}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if v.introspector.pass != "s3cret" {
			t.Fatalf("secret = %q", v.introspector.pass)
		}
	})
}

// TestFailedFirstFetchSaysNoKeysYet: a JWKS fetch that fails before any
// succeeded says that no keys are loaded, not that previous ones are kept.
func TestFailedFirstFetchSaysNoKeysYet(t *testing.T) {
	a := newIssuer(t, issA, "ES256")
	srv := newJWKSServer(t, a.JWKS())
	srv.set([]byte(`oops`), 500, "")
	var logs syncBuffer
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer: issA, JWKSURI: srv.URL, Audiences: []string{apiAud}, Algorithms: []string{"ES256"}, JWKSRefresh: time.Hour,
	}}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := v.refresh(ctx, v.issuers[0], false); err == nil {
		t.Fatal("refresh succeeded against a failing server")
	}
	if got := logs.String(); !strings.Contains(got, "no keys loaded yet") || strings.Contains(got, "keeping the previous keys") {
		t.Errorf("first failed fetch logged:\n%s", got)
	}
	srv.set(a.JWKS(), 200, "")
	if err := v.refresh(ctx, v.issuers[0], false); err != nil {
		t.Fatal(err)
	}
	srv.set([]byte(`oops`), 500, "")
	_ = v.refresh(ctx, v.issuers[0], false)
	if got := logs.String(); !strings.Contains(got, "keeping the previous keys") {
		t.Errorf("a failed refresh after keys were loaded logged:\n%s", got)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
