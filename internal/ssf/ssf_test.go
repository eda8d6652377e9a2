package ssf

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/store"
)

// Names used across the tests.
const (
	txIssuer    = "https://tx.example"
	txAudience  = "https://pdp.example/ssf"
	otherTx     = "https://other-tx.example"
	tokIssuerA  = "https://as.example"
	tokIssuerB  = "https://as2.example"
	foreignIss  = "https://foreign-as.example"
	setTypeJWT  = "secevent+jwt"
	testLogging = false
)

// signer signs test SETs the way a transmitter would.
type signer struct {
	kid string
	alg string
	key crypto.Signer
}

func newECSigner(t testing.TB, kid string, curve elliptic.Curve, alg string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, alg: alg, key: k}
}

func newRSASigner(t testing.TB, kid, alg string) signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, alg: alg, key: k}
}

func newEdSigner(t testing.TB, kid string) signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, alg: "EdDSA", key: k}
}

// jwk returns the public JWK of the signer, with kid, alg and use.
func (s signer) jwk(t testing.TB) map[string]any {
	t.Helper()
	k, err := jwk.Import(s.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["kid"], m["alg"], m["use"] = s.kid, s.alg, "sig"
	return m
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// header is the usual SET header of the signer.
func (s signer) header() string {
	h, _ := json.Marshal(map[string]string{"alg": s.alg, "typ": setTypeJWT, "kid": s.kid})
	return string(h)
}

// mint signs the raw header and payload JSON with the signer's key,
// whatever alg the header names.
func (s signer) mint(t testing.TB, header, payload string) string {
	t.Helper()
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	return input + "." + enc(s.sign(t, []byte(input)))
}

func (s signer) sign(t testing.TB, input []byte) []byte {
	t.Helper()
	switch k := s.key.(type) {
	case *ecdsa.PrivateKey:
		var digest []byte
		if k.Curve == elliptic.P384() {
			d := sha512.Sum384(input)
			digest = d[:]
		} else {
			d := sha256.Sum256(input)
			digest = d[:]
		}
		r, ss, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		ss.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		d := sha256.Sum256(input)
		var sig []byte
		var err error
		if s.alg == "PS256" {
			sig, err = rsa.SignPSS(rand.Reader, k, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input)
	}
	t.Fatalf("unsupported key %T", s.key)
	return nil
}

// setOf signs claims as a SET with the signer's usual header.
func (s signer) setOf(t testing.TB, claims map[string]any) string {
	t.Helper()
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s.mint(t, s.header(), string(p))
}

// jwksServer serves a JWKS that tests may change, and counts its fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]any
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(k map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingRevoker counts the writes that reach the real store.
type countingRevoker struct {
	Revoker
	puts atomic.Int64
}

func (c *countingRevoker) PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	c.puts.Add(1)
	return c.Revoker.PutRevocation(ctx, r)
}

// env is a receiver on a real store, behind a real push endpoint, with
// one transmitter whose keys come from a JWKS URL (ES256, RS256, PS256,
// ES384, EdDSA keys) and another whose key comes from a file.
type env struct {
	clock   *clock
	store   *store.Bolt
	rev     *countingRevoker
	recv    *Receiver
	push    *httptest.Server
	jwks    *jwksServer
	es256   signer
	rs256   signer
	ps256   signer
	es384   signer
	eddsa   signer
	otherTx signer // the file-configured transmitter's key
	cfg     []config.Transmitter
}

func testLogger(t testing.TB) *slog.Logger {
	if testLogging {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t testing.TB, mutate ...func(*config.Transmitter)) *env {
	t.Helper()
	e := &env{
		clock:   newClock(),
		es256:   newECSigner(t, "ec-1", elliptic.P256(), "ES256"),
		rs256:   newRSASigner(t, "rsa-1", "RS256"),
		ps256:   newRSASigner(t, "rsa-pss-1", "PS256"),
		es384:   newECSigner(t, "ec-384", elliptic.P384(), "ES384"),
		eddsa:   newEdSigner(t, "ed-1"),
		otherTx: newECSigner(t, "other-1", elliptic.P256(), "ES256"),
	}
	e.jwks = newJWKSServer(t, e.es256.jwk(t), e.rs256.jwk(t), e.ps256.jwk(t), e.es384.jwk(t), e.eddsa.jwk(t))

	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "other-jwks.json")
	data, _ := json.Marshal(map[string]any{"keys": []any{e.otherTx.jwk(t)}})
	if err := os.WriteFile(jwksFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	st, err := store.OpenBolt(filepath.Join(dir, "data"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.store = st
	e.rev = &countingRevoker{Revoker: st}

	e.cfg = []config.Transmitter{
		{Issuer: txIssuer, JWKSURI: e.jwks.URL, Audience: txAudience, TokenIssuers: []string{tokIssuerA, tokIssuerB}},
		{Issuer: otherTx, JWKSFile: jwksFile, Audience: txAudience},
	}
	for _, m := range mutate {
		m(&e.cfg[0])
	}
	e.recv, err = NewReceiver(context.Background(), e.cfg, e.rev, Options{
		Logger: testLogger(t),
		Now:    e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.push = httptest.NewServer(e.recv)
	t.Cleanup(e.push.Close)
	return e
}

// claims returns the claims of a SET from the URL-keyed transmitter about
// event with payload and sub_id.
func (e *env) claims(event string, payload, subID map[string]any) map[string]any {
	c := map[string]any{
		"iss":    txIssuer,
		"aud":    txAudience,
		"iat":    e.clock.Now().Unix(),
		"jti":    rand.Text(),
		"events": map[string]any{event: payload},
	}
	if subID != nil {
		c["sub_id"] = subID
	}
	return c
}

// deliver pushes a SET and returns the status, the decoded error body and
// the raw body.
func (e *env) deliver(t testing.TB, contentType, body string) (int, errorBody, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.push.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.push.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb errorBody
	if resp.StatusCode != http.StatusAccepted {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error content type = %q, want application/json", ct)
		}
		if err := json.Unmarshal(raw, &eb); err != nil {
			t.Errorf("error body %q is not JSON: %v", raw, err)
		}
	}
	return resp.StatusCode, eb, string(raw)
}

// revoked reports the revocation that applies to a token.
func (e *env) revoked(t testing.TB, ref store.TokenRef) (store.Revocation, bool) {
	t.Helper()
	r, ok, err := e.store.CheckRevocation(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return r, ok
}

func issSub(iss, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": iss, "sub": sub}
}
