package httpapi

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const (
	testClientSecret = "0123456789abcdefghijklmnopqrstuvwxyz"
	testGateway      = "gateway-credential"
)

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func testClients() []RevokeClient {
	short := "short-secret"
	return []RevokeClient{
		{ID: "web-app", SecretSHA256: sha256.Sum256([]byte(testClientSecret))},
		{ID: "svc:batch job", SecretSHA256: sha256.Sum256([]byte(testClientSecret))},
		{ID: "short", SecretSHA256: sha256.Sum256([]byte(short))},
	}
}

// The attack cases of client authentication at /v1/revoke: every way to
// present credentials (Basic, form, gateway credential, client
// certificate), each malformed, doubled, mixed or wrong.
func TestRevokeClientAuthentication(t *testing.T) {
	verified := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
	for _, tt := range []struct {
		name     string
		auth     []string // Authorization headers
		gateway  []string // X-Tokenguard-Gateway headers
		form     string
		tls      *tls.ConnectionState
		clientCA bool
		want     caller
		err      error
	}{
		{name: "fail/no credentials", err: errInvalidClient},
		{name: "ok/client_secret_basic", auth: []string{basic("web-app", testClientSecret)}, want: caller{clientID: "web-app"}},
		{name: "ok/Basic scheme in lower case", auth: []string{"basic " + strings.TrimPrefix(basic("web-app", testClientSecret), "Basic ")}, want: caller{clientID: "web-app"}},
		{name: "ok/client_secret_basic with a form-urlencoded id", auth: []string{basic("svc:batch job", testClientSecret)}, want: caller{clientID: "svc:batch job"}},
		{name: "ok/client_secret_basic with client_id naming the same client", auth: []string{basic("web-app", testClientSecret)}, form: "client_id=web-app", want: caller{clientID: "web-app"}},
		{name: "ok/client_secret_post", form: "client_id=web-app&client_secret=" + testClientSecret, want: caller{clientID: "web-app"}},
		{name: "fail/wrong secret", auth: []string{basic("web-app", testClientSecret+"x")}, err: errInvalidClient},
		{name: "fail/unknown client", auth: []string{basic("nobody", testClientSecret)}, err: errInvalidClient},
		{name: "fail/a secret shorter than 32 characters, even if its hash matches", auth: []string{basic("short", "short-secret")}, err: errInvalidClient},
		{name: "fail/empty secret", auth: []string{basic("web-app", "")}, err: errInvalidClient},
		{name: "fail/Basic without a colon", auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("web-app"))}, err: errInvalidClient},
		{name: "fail/Basic that is not base64", auth: []string{"Basic !!!"}, err: errInvalidClient},
		{name: "fail/Basic with a bad percent-encoding", auth: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("web%zz:"+testClientSecret))}, err: errInvalidClient},
		{name: "fail/Bearer scheme", auth: []string{"Bearer " + testClientSecret}, err: errInvalidClient},
		{name: "fail/Authorization over 1 KiB", auth: []string{basic("web-app", testClientSecret) + strings.Repeat("A", 1024)}, err: errInvalidClient},
		{name: "fail/a secret over 512 bytes", form: "client_id=web-app&client_secret=" + strings.Repeat("s", 513), err: errInvalidClient},
		{name: "fail/two Authorization headers", auth: []string{basic("web-app", testClientSecret), basic("web-app", testClientSecret)}, err: errAmbiguousAuth},
		{name: "fail/client_secret_basic and client_secret_post at once", auth: []string{basic("web-app", testClientSecret)}, form: "client_id=web-app&client_secret=" + testClientSecret, err: errAmbiguousAuth},
		{name: "fail/Basic naming one client, client_id another", auth: []string{basic("web-app", testClientSecret)}, form: "client_id=other", err: errAmbiguousAuth},
		{name: "fail/client_secret twice", form: "client_id=web-app&client_secret=" + testClientSecret + "&client_secret=" + testClientSecret, err: errAmbiguousAuth},
		{name: "fail/client_id twice", form: "client_id=web-app&client_id=web-app&client_secret=" + testClientSecret, err: errAmbiguousAuth},
		{name: "fail/client_secret_post without client_id", form: "client_secret=" + testClientSecret, err: errInvalidClient},
		{name: "fail/client_id alone", form: "client_id=web-app", err: errInvalidClient},
		{name: "ok/the gateway credential", gateway: []string{testGateway}, want: caller{gateway: true}},
		{name: "fail/a wrong gateway credential", gateway: []string{"guess"}, err: errInvalidClient},
		{name: "fail/the gateway credential twice", gateway: []string{testGateway, testGateway}, err: errInvalidClient},
		{name: "ok/a verified client certificate of the gateway CA", tls: verified, clientCA: true, want: caller{gateway: true}},
		{name: "fail/a client certificate without a gateway CA configured", tls: verified, err: errInvalidClient},
		{name: "fail/TLS without a verified certificate", tls: &tls.ConnectionState{}, clientCA: true, err: errInvalidClient},
		{name: "ok/client credentials through the gateway revoke as the client", gateway: []string{testGateway},
			auth: []string{basic("web-app", testClientSecret)}, want: caller{clientID: "web-app"}},
		{name: "fail/wrong client credentials through the gateway", gateway: []string{testGateway},
			auth: []string{basic("web-app", "wrong")}, err: errInvalidClient},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newClientAuth(testClients(), GatewayAuth{Credential: testGateway, ClientCA: tt.clientCA})
			r := httptest.NewRequest("POST", "/v1/revoke", nil)
			for _, h := range tt.auth {
				r.Header.Add("Authorization", h)
			}
			for _, h := range tt.gateway {
				r.Header.Add(GatewayHeader, h)
			}
			r.TLS = tt.tls
			form, err := url.ParseQuery(tt.form)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.authenticate(r, form)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("authenticate = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseSecretHash(t *testing.T) {
	sum := sha256.Sum256([]byte(testClientSecret))
	digest := hex.EncodeToString(sum[:])
	for _, tt := range []struct {
		name, data string
		ok         bool
	}{
		{"ok/hex digest with a newline", digest + "\n", true},
		{"ok/upper-case hex", strings.ToUpper(digest), true},
		{"fail/the secret itself", testClientSecret, false},
		{"fail/sha256sum output with the file name", digest + "  -\n", false},
		{"fail/not hex", strings.Repeat("z", 64), false},
		{"fail/empty", "", false},
		{"fail/too large", strings.Repeat(" ", MaxSecretHashFile) + digest, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecretHash([]byte(tt.data))
			if (err == nil) != tt.ok || (tt.ok && got != sum) {
				t.Errorf("ParseSecretHash = %x, %v; want ok %v", got, err, tt.ok)
			}
		})
	}
}

// FuzzRevokeClientAuth feeds the client-authentication parser arbitrary
// Authorization headers and form bodies: it must not panic, and what it
// accepts is one method with a bounded id and secret.
func FuzzRevokeClientAuth(f *testing.F) {
	for _, seed := range []struct{ auth, form string }{
		{basic("web-app", testClientSecret), "token=t"},
		{basic("svc:batch job", testClientSecret), ""},
		{"basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), ""},
		{"Basic !!!", ""},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("web%zz:x")), ""},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")), ""},
		{"Bearer x", ""},
		{basic("web-app", testClientSecret) + strings.Repeat("A", 1024), ""},
		{"", "client_id=web-app&client_secret=" + testClientSecret},
		{"", "client_id=web-app&client_secret=a&client_secret=b"},
		{basic("web-app", testClientSecret), "client_id=web-app&client_secret=" + testClientSecret},
		{basic("web-app", testClientSecret), "client_id=other"},
		{"", "client_secret=x"},
	} {
		f.Add(seed.auth, seed.form)
	}
	a := newClientAuth(testClients(), GatewayAuth{Credential: testGateway})
	f.Fuzz(func(t *testing.T, auth, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		var headers []string
		if auth != "" {
			headers = []string{auth}
		}
		c, err := parseClientCredentials(headers, form)
		if err != nil {
			if !errors.Is(err, errInvalidClient) && !errors.Is(err, errAmbiguousAuth) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		switch c.method {
		case "":
			if auth != "" {
				t.Fatal("an Authorization header was ignored")
			}
		case "client_secret_basic", "client_secret_post":
			if c.id == "" || c.secret == "" || len(c.id) > MaxClientIDLen || len(c.secret) > MaxClientSecretLen {
				t.Fatalf("accepted out-of-bounds credentials: %q %d bytes", c.id, len(c.secret))
			}
		default:
			t.Fatalf("method %q", c.method)
		}
		r := httptest.NewRequest("POST", "/v1/revoke", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if who, err := a.authenticate(r, form); err == nil && who.clientID != "web-app" && who.clientID != "svc:batch job" {
			t.Fatalf("authenticated as %+v", who)
		}
	})
}
