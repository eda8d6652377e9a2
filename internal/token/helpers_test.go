package token

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

const (
	issA   = "https://as.example"   // ES256 (+ES384 allowed), JWKS over HTTP, requires at+jwt
	issRSA = "https://rsa.example"  // RS256 and PS256 keys in a jwks_file; ES256 also allowed
	issEd  = "https://ed.example"   // EdDSA, jwks_file
	issP   = "https://p384.example" // ES384 and ES512, jwks_file
	apiAud = "https://api.example"
)

var testNow = time.Date(2026, 11, 27, 9, 55, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// jwksServer serves a replaceable JWKS document and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
	// status and contentType override the answer when set.
	status      int
	contentType string
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{doc: doc}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc, status, ct := s.doc, s.status, s.contentType
		s.mu.Unlock()
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		if status != 0 {
			w.WriteHeader(status)
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(doc []byte, status int, contentType string) {
	s.mu.Lock()
	s.doc, s.status, s.contentType = doc, status, contentType
	s.mu.Unlock()
}

// counter is a server that must never be contacted.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// fixture is a verifier over five test issuers with real keys.
type fixture struct {
	v      *Verifier
	clock  *clock
	a      *devissuer.Issuer // ES256 at issA
	rsa    *devissuer.Issuer // RS256 at issRSA
	ps     *devissuer.Issuer // PS256 at issRSA
	ed     *devissuer.Issuer // EdDSA at issEd
	p384   *devissuer.Issuer // ES384 at issP
	p521   *devissuer.Issuer // ES512 at issP
	jwksA  *jwksServer
	issuer []config.Issuer
}

func newIssuer(t testing.TB, url, alg string) *devissuer.Issuer {
	t.Helper()
	iss, err := devissuer.New(url, alg)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// mergeJWKS joins the keys of several JWKS documents.
func mergeJWKS(t testing.TB, docs ...[]byte) []byte {
	t.Helper()
	var all []json.RawMessage
	for _, d := range docs {
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(d, &doc); err != nil {
			t.Fatal(err)
		}
		all = append(all, doc.Keys...)
	}
	out, err := json.Marshal(map[string]any{"keys": all})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newFixture(t testing.TB, opts ...func(*Options)) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{t: testNow}}
	f.a = newIssuer(t, issA, "ES256")
	f.rsa = newIssuer(t, issRSA, "RS256")
	f.ps = newIssuer(t, issRSA, "PS256")
	f.ed = newIssuer(t, issEd, "EdDSA")
	f.p384 = newIssuer(t, issP, "ES384")
	f.p521 = newIssuer(t, issP, "ES512")
	f.jwksA = newJWKSServer(t, f.a.JWKS())
	f.issuer = []config.Issuer{
		{Issuer: issA, JWKSURI: f.jwksA.URL, Audiences: []string{apiAud}, Algorithms: []string{"ES256", "ES384"}, AccessTokenType: "at+jwt", JWKSRefresh: time.Hour},
		{Issuer: issRSA, JWKSFile: writeFile(t, "rsa.json", mergeJWKS(t, f.rsa.JWKS(), f.ps.JWKS())), Audiences: []string{apiAud, "https://other-api.example"}, Algorithms: []string{"RS256", "PS256", "ES256"}},
		{Issuer: issEd, JWKSFile: writeFile(t, "ed.json", f.ed.JWKS()), Audiences: []string{apiAud}, Algorithms: []string{"EdDSA"}},
		{Issuer: issP, JWKSFile: writeFile(t, "p.json", mergeJWKS(t, f.p384.JWKS(), f.p521.JWKS())), Audiences: []string{apiAud}, Algorithms: []string{"ES384", "ES512"}},
	}
	o := Options{Now: f.clock.Now, Skew: 30 * time.Second}
	for _, fn := range opts {
		fn(&o)
	}
	v, err := NewVerifier(context.Background(), f.issuer, o)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// claims returns valid default claims for iss, with overrides applied. A
// nil override stays in the map: Mint removes such claims.
func claims(iss string, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":       iss,
		"sub":       "user-1",
		"client_id": "client-1",
		"aud":       apiAud,
		"iat":       testNow.Add(-time.Minute).Unix(),
		"exp":       testNow.Add(5 * time.Minute).Unix(),
		"scope":     "read write",
		"jti":       "jti-1",
	}
	maps.Copy(c, overrides)
	return c
}

func mint(t testing.TB, iss *devissuer.Issuer, overrides map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	tok, err := iss.Mint(claims(iss.URL(), overrides), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// craft signs exactly the given header and payload JSON with key.
func craft(t testing.TB, key crypto.Signer, alg, header, payload string) string {
	t.Helper()
	tok, err := devissuer.SignCompact(key, alg, []byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned builds header.payload.sig from raw parts without signing.
func unsigned(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc(sig)
}

func jsonString(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantCode asserts that err is an *Error with code, and that nothing in it
// repeats the token.
func wantCode(t *testing.T, tok string, got *Token, err error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("Verify() error = %v, want success", err)
		}
		if got == nil {
			t.Fatal("Verify() returned neither token nor error")
		}
		return
	}
	if got != nil {
		t.Fatalf("Verify() returned a token, want %s", code)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify() error %T %v is not *Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("Verify() code = %s (%v), want %s", e.Code, err, code)
	}
	if e.Message == "" {
		t.Fatal("empty message")
	}
	if len(tok) > 8 && (strings.Contains(e.Message, tok) || strings.Contains(err.Error(), tok)) {
		t.Fatalf("error repeats the token: %v", err)
	}
	for _, seg := range strings.Split(tok, ".") {
		if len(seg) > 16 && strings.Contains(err.Error(), seg) {
			t.Fatalf("error repeats a token segment: %v", err)
		}
	}
}

func mustDecode(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
