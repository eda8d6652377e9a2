package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

const testAudience = "https://api.example.com"

// testbed is a real PDP (chi server, OPA with the shipped rego/, token
// verifier) behind httptest, with real issuers whose JWKS are served over
// loopback HTTP and an RFC 7662 introspection endpoint.
type testbed struct {
	pdp        *httptest.Server
	app        *app
	issuers    map[string]*devissuer.Issuer // by alg
	jwksHits   map[string]*atomic.Int64     // by alg
	introspect *introspectionServer
}

type introspectionServer struct {
	srv   *httptest.Server
	calls atomic.Int64
	// answers maps a token to the status and body the endpoint answers.
	answers map[string]struct {
		status int
		body   string
	}
}

func (s *introspectionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	id, secret, ok := r.BasicAuth()
	if !ok || id != "pdp" || secret != "s3cret" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	a, found := s.answers[r.PostFormValue("token")]
	if !found {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"active":false}`)
		return
	}
	if a.status == -1 { // hang past the client's timeout
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// policyWithData copies the shipped Rego modules into a fresh directory
// with data as its data.json: the real policy, driven by test data.
func policyWithData(t testing.TB, data string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../../rego", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../../rego", path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "data.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func newTestbed(t testing.TB, mutate func(*config.Config)) *testbed {
	t.Helper()
	tb := &testbed{issuers: map[string]*devissuer.Issuer{}, jwksHits: map[string]*atomic.Int64{}}
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Policy.Dir = "../../rego"
	cfg.DecisionTimeout = 5 * time.Second // the race detector is slow; no test asserts wall time
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		hits := &atomic.Int64{}
		var iss *devissuer.Issuer
		mux := http.NewServeMux()
		mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			iss.JWKSHandler().ServeHTTP(w, r)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		var err error
		iss, err = devissuer.New(srv.URL, alg)
		if err != nil {
			t.Fatal(err)
		}
		tb.issuers[alg], tb.jwksHits[alg] = iss, hits
		cfg.Issuers = append(cfg.Issuers, config.Issuer{
			Issuer:          srv.URL,
			JWKSURI:         srv.URL + "/jwks",
			Audiences:       []string{testAudience},
			Algorithms:      []string{alg},
			AccessTokenType: "at+jwt",
		})
	}
	tb.introspect = &introspectionServer{answers: map[string]struct {
		status int
		body   string
	}{}}
	tb.introspect.srv = httptest.NewServer(tb.introspect)
	t.Cleanup(tb.introspect.srv.Close)
	secret := filepath.Join(t.TempDir(), "introspect")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Issuers = append(cfg.Issuers, config.Issuer{
		Issuer:    "https://opaque.example.com",
		Audiences: []string{testAudience},
		Introspection: &config.Introspection{
			Endpoint: tb.introspect.srv.URL + "/introspect", ClientID: "pdp", ClientSecretFile: secret,
			Timeout: 500 * time.Millisecond,
		},
	})
	if mutate != nil {
		mutate(&cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := newApp(ctx, cfg, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	tb.app = a
	tb.pdp = httptest.NewServer(a.handler)
	t.Cleanup(tb.pdp.Close)
	tb.waitReady(t)
	return tb
}

// waitReady polls /readyz until the policy is compiled and every issuer's
// keys are loaded.
func (tb *testbed) waitReady(t testing.TB) {
	t.Helper()
	for range 500 {
		resp, err := http.Get(tb.pdp.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("PDP never became ready")
}

// decideResponse is the response of POST /v1/decide.
type decideResponse struct {
	ID      string `json:"decision_id"`
	Allow   bool   `json:"allow"`
	Status  int    `json:"status"`
	Reasons []struct {
		Code, Message string
	} `json:"reasons"`
	Warnings []struct {
		Code, Message string
	} `json:"warnings"`
	Headers         map[string]string `json:"headers"`
	UpstreamHeaders map[string]string `json:"upstream_headers"`
	Token           *struct {
		Iss       string   `json:"iss"`
		Sub       string   `json:"sub"`
		ClientID  string   `json:"client_id"`
		GrantType string   `json:"grant_type"`
		Scopes    []string `json:"scopes"`
	} `json:"token"`
	Policy struct{ Revision, Module string } `json:"policy"`
}

func (d decideResponse) codes() []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

// decide posts one decision request with the given headers.
func (tb *testbed) decide(t *testing.T, headers map[string]any, extra map[string]any) decideResponse {
	t.Helper()
	req := map[string]any{"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": headers}
	for k, v := range extra {
		req[k] = v
	}
	body, _ := json.Marshal(map[string]any{"request": req})
	resp, err := http.Post(tb.pdp.URL+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/decide: %d %s", resp.StatusCode, raw)
	}
	if resp.Header.Get("X-Decision-Id") == "" {
		t.Error("no X-Decision-Id")
	}
	var d decideResponse
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decision is not JSON: %v: %s", err, raw)
	}
	return d
}

func bearer(tok string) map[string]any { return map[string]any{"authorization": "Bearer " + tok} }

func (tb *testbed) mint(t testing.TB, alg string, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	c := map[string]any{"aud": testAudience, "sub": "alice", "client_id": "web-app", "scope": "accounts:read"}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := tb.issuers[alg].Mint(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// craft signs an arbitrary header and payload with key.
func craft(t *testing.T, iss *devissuer.Issuer, alg string, header, payload map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	tok, err := devissuer.SignCompact(iss.PrivateKey(), alg, h, p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// claimsFor are valid claims of the ES256 issuer.
func (tb *testbed) claimsFor(alg string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": tb.issuers[alg].URL(), "aud": testAudience, "sub": "alice", "client_id": "web-app",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "j1", "scope": "accounts:read",
	}
}

type want struct {
	allow  bool
	status int
	code   string // expected among the reasons on a deny
}

func check(t *testing.T, d decideResponse, w want) {
	t.Helper()
	if d.Allow != w.allow || d.Status != w.status {
		t.Fatalf("allow=%v status=%d reasons=%v, want allow=%v status=%d %s", d.Allow, d.Status, d.Reasons, w.allow, w.status, w.code)
	}
	if w.allow {
		if len(d.Reasons) != 0 || d.Headers["www-authenticate"] != "" {
			t.Errorf("an allow with reasons or a challenge: %+v", d)
		}
		return
	}
	found := false
	for _, c := range d.codes() {
		found = found || c == w.code
	}
	if !found {
		t.Errorf("reasons = %v, want %s", d.codes(), w.code)
	}
	if d.Headers["www-authenticate"] == "" {
		t.Error("a deny without a WWW-Authenticate challenge")
	}
	if len(d.UpstreamHeaders) != 0 {
		t.Errorf("a deny with upstream headers: %v", d.UpstreamHeaders)
	}
}

func TestDecideAllowsValidTokens(t *testing.T) {
	tb := newTestbed(t, nil)
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		t.Run("ok/"+alg, func(t *testing.T) {
			d := tb.decide(t, bearer(tb.mint(t, alg, nil)), nil)
			check(t, d, want{allow: true, status: 200})
			if d.UpstreamHeaders["x-tokenguard-subject"] != "alice" || d.UpstreamHeaders["x-tokenguard-client-id"] != "web-app" ||
				d.UpstreamHeaders["x-tokenguard-scopes"] != "accounts:read" || d.UpstreamHeaders["x-tokenguard-grant-type"] != "authorization_code" {
				t.Errorf("upstream headers = %v", d.UpstreamHeaders)
			}
			if d.Token == nil || d.Token.Sub != "alice" || d.Token.GrantType != "authorization_code" || d.Policy.Module != "grants.authorization_code" || d.Policy.Revision == "" {
				t.Errorf("token summary / policy = %+v %+v", d.Token, d.Policy)
			}
		})
	}
}

// TestDecideChecklistSection1 runs every attack of security checklist
// section 1 (J1–J11) through the real server.
func TestDecideChecklistSection1(t *testing.T) {
	tb := newTestbed(t, nil)
	es, rs := tb.issuers["ES256"], tb.issuers["RS256"]
	esHeader := func(extra map[string]any) map[string]any {
		h := map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": es.KID()}
		for k, v := range extra {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	claims := func(mut map[string]any) map[string]any {
		c := tb.claimsFor("ES256")
		for k, v := range mut {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	unsigned := func(header, payload map[string]any, sig []byte) string {
		h, _ := json.Marshal(header)
		p, _ := json.Marshal(payload)
		return b64(h) + "." + b64(p) + "." + b64(sig)
	}
	// J1: an RS256 token re-signed as HS256 with the RSA public key as secret.
	rsPub, _ := x509.MarshalPKIXPublicKey(rs.PrivateKey().Public())
	hsToken := func() string {
		h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": rs.KID()})
		p, _ := json.Marshal(tb.claimsFor("RS256"))
		in := b64(h) + "." + b64(p)
		mac := hmacSHA256(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsPub}), []byte(in))
		return in + "." + b64(mac)
	}()
	// J3: an attacker's own key, embedded in the header and pointed to by jku.
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkuHits := &atomic.Int64{}
	jku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { jkuHits.Add(1) }))
	defer jku.Close()
	attackerJWK := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(attacker.X.FillBytes(make([]byte, 32))), "y": b64(attacker.Y.FillBytes(make([]byte, 32))), "kid": "attacker"}
	attackerToken := func(header map[string]any) string {
		h, _ := json.Marshal(header)
		p, _ := json.Marshal(tb.claimsFor("ES256"))
		in := b64(h) + "." + b64(p)
		sig, err := devissuer.Sign(attacker, "ES256", []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + b64(sig)
	}
	// J9: signatures that are not R‖S with 0 < r, s < n.
	validES := tb.mint(t, "ES256", nil)
	parts := strings.Split(validES, ".")
	sigBytes, _ := base64.RawURLEncoding.DecodeString(parts[2])
	der := derSignature(sigBytes)
	n := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	rEqualsN := append(append([]byte{}, n...), sigBytes[32:]...)

	now := time.Now()
	tests := []struct {
		name string
		tok  string
		want want
	}{
		{"fail/J1 alg none", unsigned(esHeader(map[string]any{"alg": "none"}), claims(nil), nil), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J1 alg None", unsigned(esHeader(map[string]any{"alg": "None"}), claims(nil), nil), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J1 alg nOnE", unsigned(esHeader(map[string]any{"alg": "nOnE"}), claims(nil), nil), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J1 HS256 with the RSA public key as secret", hsToken, want{false, 401, "token_alg_not_allowed"}},
		{"fail/J1 ES256 header on an RSA issuer's key", craft(t, rs, "RS256", map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": rs.KID()}, tb.claimsFor("RS256")), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J1 RS256 token under an ES256-only issuer", craft(t, rs, "RS256", map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": rs.KID()}, claims(nil)), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J2 kid path traversal", craft(t, es, "ES256", esHeader(map[string]any{"kid": "../../dev/null"}), claims(nil)), want{false, 401, "token_signature_invalid"}},
		{"fail/J2 kid of issuer A on a token claiming issuer B", craft(t, rs, "RS256", map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": rs.KID()}, tb.claimsFor("PS256")), want{false, 401, "token_alg_not_allowed"}},
		{"fail/J2 ES256 issuer's kid signed by another ES256 key", attackerToken(esHeader(nil)), want{false, 401, "token_signature_invalid"}},
		{"fail/J3 attacker key in jwk header", attackerToken(esHeader(map[string]any{"kid": "attacker", "jwk": attackerJWK})), want{false, 401, "token_signature_invalid"}},
		{"fail/J3 jku to an attacker's server", attackerToken(esHeader(map[string]any{"kid": "attacker", "jku": jku.URL})), want{false, 401, "token_signature_invalid"}},
		{"fail/J3 x5u to metadata address", attackerToken(esHeader(map[string]any{"kid": "attacker", "x5u": "http://169.254.169.254/latest"})), want{false, 401, "token_signature_invalid"}},
		{"fail/J4 crit exp", craft(t, es, "ES256", esHeader(map[string]any{"crit": []string{"exp"}}), claims(nil)), want{false, 401, "token_malformed"}},
		{"fail/J4 crit foo", craft(t, es, "ES256", esHeader(map[string]any{"crit": []string{"foo"}, "foo": 1}), claims(nil)), want{false, 401, "token_malformed"}},
		{"fail/J4 crit empty", craft(t, es, "ES256", esHeader(map[string]any{"crit": []string{}}), claims(nil)), want{false, 401, "token_malformed"}},
		{"fail/J4 b64 false", craft(t, es, "ES256", esHeader(map[string]any{"b64": false, "crit": []string{"b64"}}), claims(nil)), want{false, 401, "token_malformed"}},
		{"fail/J5 typ JWT where at+jwt is required", craft(t, es, "ES256", esHeader(map[string]any{"typ": "JWT"}), claims(nil)), want{false, 401, "token_type_invalid"}},
		{"fail/J5 no typ where at+jwt is required", craft(t, es, "ES256", esHeader(map[string]any{"typ": nil}), claims(nil)), want{false, 401, "token_type_invalid"}},
		{"fail/J5 an ID token", craft(t, es, "ES256", esHeader(map[string]any{"typ": "JWT"}), claims(map[string]any{"nonce": "n", "at_hash": "x"})), want{false, 401, "token_type_invalid"}},
		{"fail/J5 a DPoP proof", craft(t, es, "ES256", esHeader(map[string]any{"typ": "dpop+jwt"}), claims(map[string]any{"htm": "GET", "htu": "https://api.example.com/"})), want{false, 401, "token_type_invalid"}},
		{"fail/J5 a SET", craft(t, es, "ES256", esHeader(map[string]any{"typ": "secevent+jwt"}), claims(map[string]any{"events": map[string]any{"x": map[string]any{}}})), want{false, 401, "token_type_invalid"}},
		{"fail/J5 a SET with at+jwt typ", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"events": map[string]any{"x": map[string]any{}}})), want{false, 401, "token_type_invalid"}},
		{"fail/J6 missing exp", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"exp": nil})), want{false, 401, "token_claims_missing"}},
		{"fail/J6 missing iat", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"iat": nil})), want{false, 401, "token_claims_missing"}},
		{"fail/J6 exp 10 minutes ago", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})), want{false, 401, "token_expired"}},
		{"fail/J6 nbf in the future", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})), want{false, 401, "token_not_yet_valid"}},
		{"fail/J6 exp as a string", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"exp": fmt.Sprint(now.Add(time.Hour).Unix())})), want{false, 401, "token_malformed"}},
		{"fail/J7 issuer with a trailing slash", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"iss": es.URL() + "/"})), want{false, 401, "issuer_untrusted"}},
		{"fail/J7 unknown issuer", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"iss": "https://evil.example"})), want{false, 401, "issuer_untrusted"}},
		{"fail/J8 another API's audience", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"aud": "https://other.example.com"})), want{false, 401, "audience_mismatch"}},
		{"fail/J8 empty audience array", craft(t, es, "ES256", esHeader(nil), claims(map[string]any{"aud": []string{}})), want{false, 401, "audience_mismatch"}},
		{"fail/J9 psychic signature", parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)), want{false, 401, "token_signature_invalid"}},
		{"fail/J9 DER-encoded signature", parts[0] + "." + parts[1] + "." + b64(der), want{false, 401, "token_signature_invalid"}},
		{"fail/J9 r equals n", parts[0] + "." + parts[1] + "." + b64(rEqualsN), want{false, 401, "token_signature_invalid"}},
		{"fail/J10 17 KiB of dots", strings.Repeat(".", 17<<10), want{false, 401, "token_malformed"}},
		{"fail/J10 a token over 16 KiB", parts[0] + "." + b64([]byte(`{"x":"`+strings.Repeat("a", 16<<10)+`"}`)) + "." + parts[2], want{false, 401, "token_malformed"}},
		{"fail/J10 JSON serialization", `{"payload":"x","signatures":[]}`, want{false, 401, "token_malformed"}},
		{"fail/J10 duplicate alg member", b64([]byte(`{"alg":"ES256","alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "." + parts[2], want{false, 401, "token_malformed"}},
		{"fail/J10 a JWE", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", want{false, 401, "token_malformed"}},
		{"fail/J10 not base64url", parts[0] + "." + parts[1] + "=." + parts[2], want{false, 401, "token_malformed"}},
		{"fail/J10 deep JSON", b64([]byte(strings.Repeat(`{"a":`, 100)+"1"+strings.Repeat("}", 100))) + "." + parts[1] + "." + parts[2], want{false, 401, "token_malformed"}},
		{"fail/J11 client token whose sub looks like a user gets no user route", tb.mint(t, "ES256", map[string]any{"sub": "alice", "client_id": "alice"}), want{false, 403, "grant_type_not_allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tb.decide(t, bearer(tt.tok), nil)
			check(t, d, tt.want)
			if tt.want.status == 401 && !strings.Contains(d.Headers["www-authenticate"], `error="invalid_token"`) {
				t.Errorf("challenge = %q, want error=\"invalid_token\"", d.Headers["www-authenticate"])
			}
			if strings.Contains(tt.name, "J11") && (d.Token == nil || d.Token.GrantType != "client_credentials") {
				t.Errorf("a token with sub == client_id is not a client credentials token: %+v", d.Token)
			}
		})
	}
	if n := jkuHits.Load(); n != 0 {
		t.Errorf("the jku URL was fetched %d times", n)
	}
}

// TestDecideNumericClaims: a signed token whose exp, iat or nbf is no
// NumericDate the decision point can hold (before 1970, after 2262, no
// finite number) is a malformed token, 401, before the policy runs; never a
// policy error, never clamped into a valid one.
func TestDecideNumericClaims(t *testing.T) {
	tb := newTestbed(t, nil)
	es := tb.issuers["ES256"]
	now := time.Now()
	soon := now.Add(5 * time.Minute).Unix()
	token := func(mut map[string]string) string {
		c := map[string]any{}
		for k, v := range tb.claimsFor("ES256") {
			c[k] = v
		}
		for k, v := range mut {
			c[k] = json.RawMessage(v)
		}
		return craft(t, es, "ES256", map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": es.KID()}, c)
	}
	malformed := want{false, 401, "token_malformed"}
	for _, tt := range []struct {
		name   string
		claims map[string]string
		want   want
	}{
		{"ok/iat with a fraction", map[string]string{"iat": fmt.Sprintf("%d.25", now.Unix()-1)}, want{true, 200, ""}},
		{"ok/iat at the epoch is read (and too old for the policy)", map[string]string{"iat": "0"}, want{false, 401, "token_too_old"}},
		{"fail/iat negative", map[string]string{"iat": "-1"}, malformed},
		{"fail/iat negative with a fraction", map[string]string{"iat": "-0.5"}, malformed},
		{"fail/iat at year one", map[string]string{"iat": "-62135596800"}, malformed},
		{"fail/iat past 2262", map[string]string{"iat": "9223372037"}, malformed},
		{"fail/iat with a huge exponent", map[string]string{"iat": "1e400"}, malformed},
		{"fail/iat beyond int64", map[string]string{"iat": "18446744073709551616"}, malformed},
		{"fail/exp past 2262", map[string]string{"exp": "9223372037"}, malformed},
		{"fail/exp at year 9999", map[string]string{"exp": "253402300799"}, malformed},
		{"fail/exp negative", map[string]string{"exp": "-1"}, malformed},
		{"fail/exp with a huge exponent", map[string]string{"exp": "1e308"}, malformed},
		{"fail/nbf negative", map[string]string{"nbf": "-5"}, malformed},
		{"fail/nbf past 2262", map[string]string{"nbf": "1e10"}, malformed},
		{"ok/exp a fraction ahead", map[string]string{"exp": fmt.Sprintf("%d.5", soon)}, want{true, 200, ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := tb.decide(t, bearer(token(tt.claims)), nil)
			check(t, d, tt.want)
			if !tt.want.allow && !strings.Contains(d.Headers["www-authenticate"], `error="invalid_token"`) {
				t.Errorf("challenge = %q, want error=\"invalid_token\"", d.Headers["www-authenticate"])
			}
		})
	}
}

// TestDecideRefusesHugeCredentialsBeforeParsing: a megabyte of Authorization
// header is refused as a malformed request (400 problem) before any token
// parsing happens.
func TestDecideRefusesHugeCredentialsBeforeParsing(t *testing.T) {
	tb := newTestbed(t, nil)
	body, _ := json.Marshal(map[string]any{"request": map[string]any{"method": "GET", "url": "https://api.example.com/x",
		"headers": map[string]any{"authorization": "Bearer " + strings.Repeat(".", 1_000_000)}}})
	resp, err := http.Post(tb.pdp.URL+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("1 MB of dots: %d %s, want a 400 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestDecideUnknownKidFloodCausesOneRefresh(t *testing.T) {
	tb := newTestbed(t, nil)
	es := tb.issuers["ES256"]
	before := tb.jwksHits["ES256"].Load()
	for i := range 50 {
		h := map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": fmt.Sprintf("random-%d", i)}
		d := tb.decide(t, bearer(craft(t, es, "ES256", h, tb.claimsFor("ES256"))), nil)
		check(t, d, want{false, 401, "token_signature_invalid"})
	}
	if fetched := tb.jwksHits["ES256"].Load() - before; fetched > 1 {
		t.Errorf("50 unknown kids caused %d JWKS fetches, want at most 1", fetched)
	}
}

func TestDecideRequestShapes(t *testing.T) {
	tb := newTestbed(t, nil)
	tok := tb.mint(t, "ES256", nil)
	t.Run("fail/no token is a bare challenge", func(t *testing.T) {
		d := tb.decide(t, map[string]any{}, nil)
		check(t, d, want{false, 401, "token_missing"})
		if got := d.Headers["www-authenticate"]; got != `Bearer realm="tokenguard"` {
			t.Errorf("challenge = %q", got)
		}
	})
	t.Run("fail/basic credentials are no access token", func(t *testing.T) {
		check(t, tb.decide(t, map[string]any{"authorization": "Basic YTpi"}, nil), want{false, 401, "token_missing"})
	})
	t.Run("fail/two authorization headers", func(t *testing.T) {
		d := tb.decide(t, map[string]any{"authorization": []string{"Bearer " + tok, "Bearer " + tok}}, nil)
		check(t, d, want{false, 400, "request_invalid"})
		if !strings.Contains(d.Headers["www-authenticate"], `error="invalid_request"`) {
			t.Errorf("challenge = %q", d.Headers["www-authenticate"])
		}
	})
	t.Run("ok/scheme is case-insensitive", func(t *testing.T) {
		check(t, tb.decide(t, map[string]any{"Authorization": "bearer " + tok}, nil), want{true, 200, ""})
	})
	t.Run("fail/deprecated password grant", func(t *testing.T) {
		check(t, tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"gty": "password"})), nil), want{false, 401, "grant_type_not_allowed"})
	})
	t.Run("ok/token exchange names the outermost actor only", func(t *testing.T) {
		d := tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"act": map[string]any{"sub": "svc-b", "act": map[string]any{"sub": "admin"}}})), nil)
		check(t, d, want{true, 200, ""})
		if d.UpstreamHeaders["x-tokenguard-actor"] != "svc-b" || d.Token.GrantType != "token_exchange" {
			t.Errorf("upstream = %v", d.UpstreamHeaders)
		}
	})
	t.Run("fail/DPoP-bound token as bearer", func(t *testing.T) {
		d := tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})), nil)
		check(t, d, want{false, 401, "dpop_required"})
		if !strings.HasPrefix(d.Headers["www-authenticate"], "DPoP ") {
			t.Errorf("challenge = %q, want the DPoP scheme", d.Headers["www-authenticate"])
		}
	})
	certPEM, thumb := selfSignedCert(t)
	mtlsToken := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"x5t#S256": thumb}})
	t.Run("fail/mTLS-bound token without a certificate", func(t *testing.T) {
		check(t, tb.decide(t, bearer(mtlsToken), nil), want{false, 401, "mtls_binding_mismatch"})
	})
	t.Run("fail/mTLS-bound token with another certificate", func(t *testing.T) {
		other, _ := selfSignedCert(t)
		check(t, tb.decide(t, bearer(mtlsToken), map[string]any{"tls_client_cert": other}), want{false, 401, "mtls_binding_mismatch"})
	})
	t.Run("ok/mTLS-bound token with its certificate", func(t *testing.T) {
		check(t, tb.decide(t, bearer(mtlsToken), map[string]any{"tls_client_cert": certPEM}), want{true, 200, ""})
	})
}

func TestDecideIntrospection(t *testing.T) {
	tb := newTestbed(t, nil)
	exp := time.Now().Add(5 * time.Minute).Unix()
	active := fmt.Sprintf(`{"active":true,"iss":"https://opaque.example.com","sub":"bob","client_id":"mobile","scope":"accounts:read","aud":%q,"exp":%d,"iat":%d}`,
		testAudience, exp, time.Now().Unix())
	set := func(tok string, status int, body string) {
		tb.introspect.answers[tok] = struct {
			status int
			body   string
		}{status, body}
	}
	set("opaque-active", 200, active)
	set("opaque-inactive", 200, `{"active":false}`)
	set("opaque-string-active", 200, strings.Replace(active, `"active":true`, `"active":"true"`, 1))
	set("opaque-no-active", 200, strings.Replace(active, `"active":true,`, ``, 1))
	set("opaque-500", 500, active)
	set("opaque-not-json", 200, `<html>ok</html>`)
	set("opaque-wrong-issuer", 200, strings.Replace(active, "https://opaque.example.com", "https://evil.example", 1))
	set("opaque-other-audience", 200, strings.Replace(active, testAudience, "https://other.example.com", 1))
	set("opaque-expired", 200, strings.Replace(active, fmt.Sprint(exp), fmt.Sprint(time.Now().Add(-time.Minute).Unix()), 1))
	set("opaque-timeout", -1, "")
	tests := []struct {
		name, tok string
		want      want
	}{
		{"ok/active", "opaque-active", want{true, 200, ""}},
		{"fail/inactive", "opaque-inactive", want{false, 401, "token_inactive"}},
		{"fail/active as a string", "opaque-string-active", want{false, 401, "introspection_failed"}},
		{"fail/active missing", "opaque-no-active", want{false, 401, "introspection_failed"}},
		{"fail/status 500", "opaque-500", want{false, 401, "introspection_failed"}},
		{"fail/not JSON", "opaque-not-json", want{false, 401, "introspection_failed"}},
		{"fail/another issuer", "opaque-wrong-issuer", want{false, 401, "issuer_untrusted"}},
		{"fail/another audience", "opaque-other-audience", want{false, 401, "audience_mismatch"}},
		{"fail/expired", "opaque-expired", want{false, 401, "token_expired"}},
		{"fail/timeout", "opaque-timeout", want{false, 401, "introspection_failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tb.decide(t, bearer(tt.tok), nil), tt.want)
		})
	}
	t.Run("ok/active answers are cached", func(t *testing.T) {
		before := tb.introspect.calls.Load()
		for range 5 {
			check(t, tb.decide(t, bearer("opaque-active"), nil), want{true, 200, ""})
		}
		if calls := tb.introspect.calls.Load() - before; calls != 0 {
			t.Errorf("%d introspection calls for a cached token", calls)
		}
	})
}

// newBrokenPolicyApp wires the app on a policy that never compiles (an
// unsafe variable), with one ES256 issuer: no policy is ever active.
func newBrokenPolicyApp(t *testing.T) (*app, *devissuer.Issuer) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.rego"), []byte("package tokenguard.main\n\ndecision := {\"allow\": true} if { x }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Policy.Dir = dir
	iss, _ := devissuer.New("https://as.example.com", "ES256")
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	_ = os.WriteFile(jwks, iss.JWKS(), 0o600)
	cfg.Issuers = []config.Issuer{{Issuer: iss.URL(), JWKSFile: jwks, Audiences: []string{testAudience}}}
	cfg.ApplyDefaults()
	a, err := newApp(t.Context(), cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a, iss
}

func TestBrokenPolicyDeniesWithPolicyError(t *testing.T) {
	a, iss := newBrokenPolicyApp(t)
	defer a.Close()
	srv := httptest.NewServer(a.handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d without a policy, want 503", resp.StatusCode)
	}
	tok, _ := iss.Mint(map[string]any{"aud": testAudience, "sub": "alice", "client_id": "web"})
	body := `{"request":{"method":"GET","url":"https://api.example.com/x","headers":{"authorization":"Bearer ` + tok + `"}}}`
	resp, err = http.Post(srv.URL+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(raw), `"allow":false`) || !strings.Contains(string(raw), "policy_error") {
		t.Errorf("decide without a policy = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
}

func hmacSHA256(key, msg []byte) []byte {
	// HMAC by hand keeps the attack explicit: this is what a confused
	// verifier would compute with the RSA public key as the secret.
	const block = 64
	if len(key) > block {
		s := sha256.Sum256(key)
		key = s[:]
	}
	k := make([]byte, block)
	copy(k, key)
	ipad, opad := make([]byte, block), make([]byte, block)
	for i := range k {
		ipad[i], opad[i] = k[i]^0x36, k[i]^0x5c
	}
	inner := sha256.Sum256(append(ipad, msg...))
	outer := sha256.Sum256(append(opad, inner[:]...))
	return outer[:]
}

// derSignature re-encodes an R‖S signature as ASN.1 DER.
func derSignature(rs []byte) []byte {
	enc := func(b []byte) []byte {
		v := new(big.Int).SetBytes(b).Bytes()
		if len(v) > 0 && v[0]&0x80 != 0 {
			v = append([]byte{0}, v...)
		}
		return append([]byte{0x02, byte(len(v))}, v...)
	}
	r, s := enc(rs[:len(rs)/2]), enc(rs[len(rs)/2:])
	return append([]byte{0x30, byte(len(r) + len(s))}, append(r, s...)...)
}

// selfSignedCert returns a PEM certificate and its RFC 8705 thumbprint.
func selfSignedCert(t *testing.T) (string, string) {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), b64(sum[:])
}
