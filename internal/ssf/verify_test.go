package ssf

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/jose"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPushRefusals(t *testing.T) {
	e := newEnv(t)
	const user = "refused-user"
	claims := func(mutate ...func(map[string]any)) map[string]any {
		c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, user))
		for _, m := range mutate {
			m(c)
		}
		return c
	}
	payload := func(mutate ...func(map[string]any)) string {
		p, err := json.Marshal(claims(mutate...))
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	set := func(mutate ...func(map[string]any)) string { return e.es256.setOf(t, claims(mutate...)) }
	event := func(ev map[string]any) func(map[string]any) {
		return func(c map[string]any) { c["events"] = ev }
	}

	// An attacker's key server, which no refusal may ever reach.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { attackerHits.Add(1) }))
	t.Cleanup(attacker.Close)
	evil := newECSigner(t, "evil-1", elliptic.P256(), "ES256")
	evilJWK, _ := json.Marshal(evil.jwk(t))

	rsaPubPEM := func() []byte {
		der, err := x509.MarshalPKIXPublicKey(e.rs256.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()

	cases := []struct {
		name        string
		contentType string
		method      string
		body        func() string
		wantStatus  int
		wantErr     string
		wantDesc    string // when set, the exact description
	}{
		{name: "fail/unsigned alg none", body: func() string {
			return enc([]byte(`{"alg":"none","typ":"secevent+jwt"}`)) + "." + enc([]byte(payload())) + "."
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/alg nOnE with a signature", body: func() string {
			return e.es256.mint(t, `{"alg":"nOnE","typ":"secevent+jwt","kid":"ec-1"}`, payload())
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/HS256 keyed with the transmitter's RSA public key", body: func() string {
			input := enc([]byte(`{"alg":"HS256","typ":"secevent+jwt","kid":"rsa-1"}`)) + "." + enc([]byte(payload()))
			mac := hmac.New(sha256.New, rsaPubPEM)
			mac.Write([]byte(input))
			return input + "." + enc(mac.Sum(nil))
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/issuer that is no transmitter", body: func() string {
			return set(func(c map[string]any) { c["iss"] = "https://evil.example" })
		}, wantErr: CodeInvalidIssuer},
		{name: "fail/issuer with a trailing slash", body: func() string {
			return set(func(c map[string]any) { c["iss"] = txIssuer + "/" })
		}, wantErr: CodeInvalidIssuer},
		{name: "fail/no iss", body: func() string { return set(func(c map[string]any) { delete(c, "iss") }) }, wantErr: CodeInvalidIssuer},
		{name: "fail/audience of another receiver", body: func() string {
			return set(func(c map[string]any) { c["aud"] = "https://other-pdp.example" })
		}, wantErr: CodeInvalidAudience},
		{name: "fail/empty aud array", body: func() string { return set(func(c map[string]any) { c["aud"] = []string{} }) }, wantErr: CodeInvalidAudience},
		{name: "fail/no aud", body: func() string { return set(func(c map[string]any) { delete(c, "aud") }) }, wantErr: CodeInvalidAudience},
		{name: "fail/sub present", body: func() string { return set(func(c map[string]any) { c["sub"] = user }) }, wantErr: CodeInvalidRequest},
		{name: "fail/exp present", body: func() string {
			return set(func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/two events", body: func() string {
			return set(event(map[string]any{EventAccountDisabled: map[string]any{}, EventCredentialChange: map[string]any{}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/no event", body: func() string { return set(event(map[string]any{})) }, wantErr: CodeInvalidRequest},
		{name: "fail/events not an object", body: func() string {
			return set(func(c map[string]any) { c["events"] = []string{EventAccountDisabled} })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/empty event type", body: func() string {
			return set(event(map[string]any{"": map[string]any{}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/event payload not an object", body: func() string {
			return set(event(map[string]any{EventAccountDisabled: true}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/typ JWT", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"JWT","kid":"ec-1"}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "fail/typ at+jwt", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "fail/no typ", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","kid":"ec-1"}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "ok/typ application/secevent+jwt in upper case", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"APPLICATION/SECEVENT+JWT","kid":"ec-1"}`, payload())
		}, wantStatus: http.StatusAccepted},
		{name: "fail/content type application/json", contentType: "application/json", body: func() string { return set() }, wantErr: CodeInvalidRequest},
		{name: "fail/content type application/jwt", contentType: "application/jwt", body: func() string { return set() }, wantErr: CodeInvalidRequest},
		{name: "fail/no content type", contentType: "-", body: func() string { return set() }, wantErr: CodeInvalidRequest},
		{name: "ok/content type with a parameter", contentType: "Application/SecEvent+JWT; charset=utf-8", body: func() string { return set() }, wantStatus: http.StatusAccepted},
		{name: "fail/flipped signature byte", body: func() string {
			s := set()
			i := strings.LastIndexByte(s, '.')
			sig, _ := jose.B64.DecodeString(s[i+1:])
			sig[len(sig)/2] ^= 1
			return s[:i+1] + enc(sig)
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/all-zero ECDSA signature", body: func() string {
			s := set()
			i := strings.LastIndexByte(s, '.')
			return s[:i+1] + enc(make([]byte, 64))
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/ECDSA signature longer than R||S", body: func() string {
			s := set()
			i := strings.LastIndexByte(s, '.')
			sig, _ := jose.B64.DecodeString(s[i+1:])
			return s[:i+1] + enc(append(sig, 0))
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/payload changed after signing", body: func() string {
			s := set()
			parts := strings.Split(s, ".")
			parts[1] = enc([]byte(payload(func(c map[string]any) { c["jti"] = "swapped" })))
			return strings.Join(parts, ".")
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/signed by an unpublished key under a published kid", body: func() string {
			return evil.mint(t, e.es256.header(), payload())
		}, wantErr: CodeAuthenticationFailed},
		{name: "fail/unknown kid", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"no-such-key"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/kid of another transmitter", body: func() string {
			return e.otherTx.mint(t, e.otherTx.header(), payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/ES256 with the kid of an RSA key", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"rsa-1"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/ES256 with the kid of a P-384 key", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"ec-384"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/no kid", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/jku naming an attacker's key set", body: func() string {
			return evil.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"evil-1","jku":"`+attacker.URL+`"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/attacker key embedded in jwk", body: func() string {
			return evil.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"evil-1","jwk":`+string(evilJWK)+`}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/x5u naming an attacker's certificate", body: func() string {
			return evil.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"evil-1","x5u":"`+attacker.URL+`"}`, payload())
		}, wantErr: CodeInvalidKey},
		{name: "fail/crit header", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"ec-1","crit":["exp"]}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "fail/b64 false", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"ec-1","b64":false,"crit":["b64"]}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "fail/duplicate alg in the header", body: func() string {
			return e.es256.mint(t, `{"alg":"ES256","typ":"secevent+jwt","kid":"ec-1","alg":"none"}`, payload())
		}, wantErr: CodeInvalidRequest},
		{name: "fail/duplicate iss in the claims", body: func() string {
			p := payload()
			return e.es256.mint(t, e.es256.header(), `{"iss":"https://evil.example",`+p[1:])
		}, wantErr: CodeInvalidRequest},
		{name: "fail/duplicate member inside sub_id", body: func() string {
			p := payload(func(c map[string]any) { delete(c, "sub_id") })
			return e.es256.mint(t, e.es256.header(), `{"sub_id":{"format":"iss_sub","iss":"`+tokIssuerA+`","sub":"a","sub":"b"},`+p[1:])
		}, wantErr: CodeInvalidRequest},
		{name: "fail/oversize body", body: func() string {
			s := set()
			return s + strings.Repeat("A", MaxSETSize+1-len(s)+10)
		}, wantErr: CodeInvalidRequest},
		{name: "fail/encrypted SET", body: func() string { return "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d" }, wantErr: CodeInvalidRequest},
		{name: "fail/JSON serialization", body: func() string {
			s := set()
			parts := strings.Split(s, ".")
			return `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`
		}, wantErr: CodeInvalidRequest},
		{name: "fail/padded base64", body: func() string {
			s := set()
			i := strings.IndexByte(s, '.')
			return s[:i] + "=" + s[i:]
		}, wantErr: CodeInvalidRequest},
		{name: "fail/garbage", body: func() string { return "not a token" }, wantErr: CodeInvalidRequest},
		{name: "fail/empty body", body: func() string { return "" }, wantErr: CodeInvalidRequest},
		{name: "fail/no iat", body: func() string { return set(func(c map[string]any) { delete(c, "iat") }) }, wantErr: CodeInvalidRequest},
		{name: "fail/iat as a string", body: func() string {
			return set(func(c map[string]any) { c["iat"] = "1700000000" })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/iat negative", body: func() string {
			return set(func(c map[string]any) { c["iat"] = -1 })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/iat past 2262", body: func() string {
			return set(func(c map[string]any) { c["iat"] = int64(9223372037) })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/event_timestamp negative", body: func() string {
			return set(event(map[string]any{EventAccountDisabled: map[string]any{"event_timestamp": -1}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/no jti", body: func() string { return set(func(c map[string]any) { delete(c, "jti") }) }, wantErr: CodeInvalidRequest},
		{name: "fail/jti of 10 KB", body: func() string {
			return set(func(c map[string]any) { c["jti"] = strings.Repeat("j", 10_000) })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/no subject", body: func() string { return set(func(c map[string]any) { delete(c, "sub_id") }) }, wantErr: CodeInvalidRequest},
		{name: "fail/subject without format", body: func() string {
			return set(func(c map[string]any) { c["sub_id"] = map[string]any{"sub": user} })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/iss_sub without sub", body: func() string {
			return set(func(c map[string]any) { c["sub_id"] = map[string]any{"format": "iss_sub", "iss": tokIssuerA} })
		}, wantErr: CodeInvalidRequest},
		{name: "fail/sub_id and the legacy subject disagree", body: func() string {
			return set(event(map[string]any{EventAccountDisabled: map[string]any{"subject": issSub(tokIssuerA, "someone-else")}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/event_timestamp as a string", body: func() string {
			return set(event(map[string]any{EventAccountDisabled: map[string]any{"event_timestamp": "yesterday"}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/device-compliance-change without current_status", body: func() string {
			return set(event(map[string]any{EventDeviceComplianceChange: map[string]any{"previous_status": "compliant"}}))
		}, wantErr: CodeInvalidRequest},
		{name: "fail/iss_sub naming a token issuer the transmitter may not speak for", body: func() string {
			return set(func(c map[string]any) { c["sub_id"] = issSub(foreignIss, user) })
		}, wantErr: CodeAccessDenied},
		{name: "fail/iss_sub naming the transmitter, which is not one of its token issuers", body: func() string {
			return set(func(c map[string]any) { c["sub_id"] = issSub(txIssuer, user) })
		}, wantErr: CodeAccessDenied},
		{name: "fail/complex session naming a foreign token issuer", body: func() string {
			return set(func(c map[string]any) {
				c["sub_id"] = map[string]any{"format": "complex", "user": issSub(tokIssuerA, user), "session": issSub(foreignIss, "sid")}
			})
		}, wantErr: CodeAccessDenied},
		{name: "fail/iat a year old", body: func() string {
			return set(func(c map[string]any) { c["iat"] = e.clock.Now().Add(-365 * 24 * time.Hour).Unix() })
		}, wantErr: CodeInvalidRequest, wantDesc: "the SET is too old"},
		{name: "fail/iat a minute past max_age", body: func() string {
			return set(func(c map[string]any) { c["iat"] = e.clock.Now().Add(-DefaultMaxAge - time.Minute).Unix() })
		}, wantErr: CodeInvalidRequest, wantDesc: "the SET is too old"},
		{name: "fail/iat an hour in the future", body: func() string {
			return set(func(c map[string]any) { c["iat"] = e.clock.Now().Add(time.Hour).Unix() })
		}, wantErr: CodeInvalidRequest, wantDesc: "the SET is issued in the future"},
		{name: "fail/iat in the year 2200", body: func() string {
			return set(func(c map[string]any) { c["iat"] = 7258118400 })
		}, wantErr: CodeInvalidRequest, wantDesc: "the SET is issued in the future"},
		{name: "fail/iat in the year 5000, past what a NumericDate may hold here", body: func() string {
			return set(func(c map[string]any) { c["iat"] = 95617584000 })
		}, wantErr: CodeInvalidRequest, wantDesc: "the SET needs iat as a NumericDate"},
		{name: "fail/GET", method: http.MethodGet, body: func() string { return "" }, wantStatus: http.StatusMethodNotAllowed, wantErr: CodeInvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.rev.puts.Load()
			body := c.body()
			req, err := http.NewRequest(cmp(c.method, http.MethodPost), e.push.URL, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			switch c.contentType {
			case "":
				req.Header.Set("Content-Type", ContentType)
			case "-":
			default:
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := e.push.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb errorBody
			rawBytes, _ := io.ReadAll(resp.Body)
			raw := string(rawBytes)
			wantStatus := c.wantStatus
			if wantStatus == 0 {
				wantStatus = http.StatusBadRequest
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, raw, wantStatus)
			}
			if wantStatus == http.StatusAccepted {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type = %q, want application/json", ct)
			}
			if err := json.Unmarshal(rawBytes, &eb); err != nil {
				t.Fatalf("body %q: %v", raw, err)
			}
			if eb.Err != c.wantErr || eb.Description == "" || (c.wantDesc != "" && eb.Description != c.wantDesc) {
				t.Errorf("error = %+v, want err %q with a description %q", eb, c.wantErr, c.wantDesc)
			}
			if strings.Contains(raw, user) || (len(body) > 20 && strings.Contains(raw, body[:20])) {
				t.Errorf("error body %q repeats the SET", raw)
			}
			if got := e.rev.puts.Load() - before; got != 0 {
				t.Errorf("a refused SET wrote %d revocations", got)
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server was fetched %d times", n)
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestUnknownKidRefreshesTheKeySetAtMostOncePer30s(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	start := e.jwks.fetches.Load()
	claims := func() map[string]any {
		return e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "rotated-user"))
	}

	// A flood of unknown kids right after start fetches nothing: the key
	// set was fetched at start.
	for i := range 20 {
		s := newECSigner(t, "random-"+string(rune('a'+i)), elliptic.P256(), "ES256")
		if _, err := e.recv.Process(ctx, []byte(s.setOf(t, claims()))); !hasCode(err, CodeInvalidKey) {
			t.Fatalf("unknown kid: err = %v, want invalid_key", err)
		}
	}
	if got := e.jwks.fetches.Load() - start; got != 0 {
		t.Errorf("fetches within 30 s of the last one = %d, want 0", got)
	}

	// The transmitter rotates to a new key.
	rotated := newECSigner(t, "ec-2", elliptic.P256(), "ES256")
	e.jwks.add(rotated.jwk(t))
	if _, err := e.recv.Process(ctx, []byte(rotated.setOf(t, claims()))); !hasCode(err, CodeInvalidKey) {
		t.Fatalf("new kid within 30 s: err = %v, want invalid_key", err)
	}

	// 30 s later, one unknown kid fetches the key set once; the flood
	// after it fetches nothing more.
	e.clock.Advance(31 * time.Second)
	if _, err := e.recv.Process(ctx, []byte(rotated.setOf(t, claims()))); err != nil {
		t.Fatalf("rotated key after 30 s: %v", err)
	}
	for i := range 20 {
		s := newECSigner(t, "flood-"+string(rune('a'+i)), elliptic.P256(), "ES256")
		if _, err := e.recv.Process(ctx, []byte(s.setOf(t, claims()))); !hasCode(err, CodeInvalidKey) {
			t.Fatalf("unknown kid: err = %v, want invalid_key", err)
		}
	}
	if got := e.jwks.fetches.Load() - start; got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}

	// Keys older than the refresh interval are fetched again on use.
	e.clock.Advance(DefaultJWKSRefresh)
	if _, err := e.recv.Process(ctx, []byte(e.es256.setOf(t, claims()))); err != nil {
		t.Fatalf("known key: %v", err)
	}
	if got := e.jwks.fetches.Load() - start; got != 2 {
		t.Errorf("fetches after the refresh interval = %d, want 2", got)
	}
}

func hasCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

func TestNewVerifierRefusesBrokenConfiguration(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		data, _ := json.Marshal(v)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ec := newECSigner(t, "ec-1", elliptic.P256(), "ES256")
	good := write("good.json", map[string]any{"keys": []any{ec.jwk(t)}})

	privEC, _ := jwk.Import(ec.key)
	_ = privEC.Set(jwk.KeyIDKey, "priv")
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakJWK := map[string]any{"kty": "RSA", "kid": "weak", "alg": "RS256", "n": enc(weak.N.Bytes()), "e": "AQAB"}
	noKid := ec.jwk(t)
	delete(noKid, "kid")
	encKey := ec.jwk(t)
	encKey["use"] = "enc"
	hsAlg := ec.jwk(t)
	hsAlg["alg"] = "HS256"

	tx := func(mutate func(*config.Transmitter)) []config.Transmitter {
		c := config.Transmitter{Issuer: txIssuer, JWKSFile: good, Audience: txAudience}
		mutate(&c)
		return []config.Transmitter{c}
	}
	cases := []struct {
		name string
		cfg  []config.Transmitter
	}{
		{"fail/jwks_file missing", tx(func(c *config.Transmitter) { c.JWKSFile = filepath.Join(dir, "missing.json") })},
		{"fail/jwks_file with only a private key", tx(func(c *config.Transmitter) {
			c.JWKSFile = write("private.json", map[string]any{"keys": []any{privEC}})
		})},
		{"fail/jwks_file with only an oct key", tx(func(c *config.Transmitter) {
			c.JWKSFile = write("oct.json", map[string]any{"keys": []any{map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}}})
		})},
		{"fail/jwks_file with only a 1024-bit RSA key", tx(func(c *config.Transmitter) {
			c.JWKSFile = write("weak.json", map[string]any{"keys": []any{weakJWK}})
		})},
		{"fail/jwks_file with only unusable keys", tx(func(c *config.Transmitter) {
			c.JWKSFile = write("unusable.json", map[string]any{"keys": []any{noKid, encKey, hsAlg}})
		})},
		{"fail/jwks_file with one kid twice", tx(func(c *config.Transmitter) {
			c.JWKSFile = write("dup.json", map[string]any{"keys": []any{ec.jwk(t), ec.jwk(t)}})
		})},
		{"fail/both jwks_uri and jwks_file", tx(func(c *config.Transmitter) { c.JWKSURI = "https://tx.example/jwks" })},
		{"fail/no audience", tx(func(c *config.Transmitter) { c.Audience = "" })},
		{"fail/duplicate transmitter", append(tx(func(*config.Transmitter) {}), tx(func(*config.Transmitter) {})...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewVerifier(context.Background(), c.cfg, VerifierOptions{Logger: testLogger(t)}); err == nil {
				t.Error("NewVerifier accepted the configuration")
			}
		})
	}
	t.Run("ok/keys the receiver cannot use are skipped, the others kept", func(t *testing.T) {
		file := write("mixed.json", map[string]any{"keys": []any{
			weakJWK, map[string]any{"kty": "FOO", "kid": "foo"}, encKey, ec.jwk(t),
		}})
		// encKey shares ec's kid but is dropped before the duplicate check.
		v, err := NewVerifier(context.Background(), tx(func(c *config.Transmitter) { c.JWKSFile = file }), VerifierOptions{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		set := ec.setOf(t, map[string]any{"iss": txIssuer, "aud": txAudience, "iat": time.Now().Unix(), "jti": "j",
			"sub_id": issSub(txIssuer, "u"), "events": map[string]any{EventAccountDisabled: map[string]any{}}})
		if _, err := v.Verify(context.Background(), []byte(set)); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	t.Run("ok/unreachable jwks_uri does not keep the receiver from starting", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		v, err := NewVerifier(context.Background(), tx(func(c *config.Transmitter) { c.JWKSFile, c.JWKSURI = "", srv.URL }), VerifierOptions{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		set := ec.setOf(t, map[string]any{"iss": txIssuer, "aud": txAudience, "iat": time.Now().Unix(), "jti": "j",
			"sub_id": issSub(txIssuer, "u"), "events": map[string]any{EventAccountDisabled: map[string]any{}}})
		if _, err := v.Verify(context.Background(), []byte(set)); !hasCode(err, CodeInvalidKey) {
			t.Errorf("err = %v, want invalid_key while the keys cannot be fetched", err)
		}
	})
}
