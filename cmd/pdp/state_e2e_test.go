package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/store"
)

const adminCredential = "admin-credential-for-tests"

// stateTestbed is a testbed with the admin API on and a Shared Signals
// transmitter trusted for the ES256 issuer's subjects.
type stateTestbed struct {
	*testbed
	transmitter *devissuer.Issuer
}

func newStateTestbed(t *testing.T, mutate ...func(*config.Config)) *stateTestbed {
	t.Helper()
	tx, err := devissuer.New("https://tx.example", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	credFile := filepath.Join(dir, "admin")
	txJWKS := filepath.Join(dir, "tx-jwks.json")
	if err := os.WriteFile(credFile, []byte(adminCredential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(txJWKS, tx.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := newTestbed(t, func(c *config.Config) {
		c.Admin.TokenFile = credFile
		var esIssuer string
		for _, is := range c.Issuers {
			if len(is.Algorithms) == 1 && is.Algorithms[0] == "ES256" {
				esIssuer = is.Issuer
			}
		}
		c.SSF.Transmitters = []config.Transmitter{{
			Issuer: tx.URL(), JWKSFile: txJWKS, Audience: "https://pdp.example/ssf", TokenIssuers: []string{esIssuer},
		}}
		for _, m := range mutate {
			m(c)
		}
	})
	return &stateTestbed{testbed: tb, transmitter: tx}
}

// admin calls the admin API with the test credential.
func (tb *testbed) admin(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	return tb.call(t, method, path, "application/json", body, "Bearer "+adminCredential)
}

func (tb *testbed) call(t *testing.T, method, path, contentType, body, authorization string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, tb.pdp.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestRevocationsStopTheNextDecision(t *testing.T) {
	tb := newStateTestbed(t)
	es := tb.issuers["ES256"]
	past := time.Now().Add(-time.Minute).Unix()
	tests := []struct {
		name   string
		claims map[string]any
		revoke string // admin request body
		code   string
	}{
		{"fail/jti revoked", map[string]any{"jti": "jti-1"}, `{"kind":"jti","iss":%q,"value":"jti-1","reason":"leaked"}`, "token_revoked"},
		{"fail/subject cut off", map[string]any{"sub": "carol", "iat": past}, `{"kind":"subject","iss":%q,"value":"carol","reason":"disabled"}`, "subject_revoked"},
		{"fail/session cut off", map[string]any{"sid": "sess-1", "iat": past}, `{"kind":"session","iss":%q,"value":"sess-1"}`, "session_revoked"},
		{"fail/client cut off", map[string]any{"client_id": "batch", "iat": past}, `{"kind":"client","iss":%q,"value":"batch"}`, "client_revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tb.mint(t, "ES256", tt.claims)
			check(t, tb.decide(t, bearer(tok), nil), want{true, 200, ""})
			status, rec := tb.admin(t, "POST", "/v1/admin/revocations", fmt.Sprintf(tt.revoke, es.URL()))
			if status != http.StatusCreated || rec["id"] == "" {
				t.Fatalf("POST /v1/admin/revocations = %d %v", status, rec)
			}
			d := tb.decide(t, bearer(tok), nil)
			check(t, d, want{false, 401, tt.code})
			if !strings.Contains(d.Headers["www-authenticate"], `error="invalid_token"`) {
				t.Errorf("challenge = %q", d.Headers["www-authenticate"])
			}
		})
	}
	t.Run("ok/a token issued after a subject cut-off passes", func(t *testing.T) {
		status, _ := tb.admin(t, "POST", "/v1/admin/revocations",
			fmt.Sprintf(`{"kind":"subject","iss":%q,"value":"dave","not_before":%q}`, es.URL(), time.Now().Add(-time.Hour).Format(time.RFC3339)))
		if status != http.StatusCreated {
			t.Fatalf("status %d", status)
		}
		check(t, tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"sub": "dave"})), nil), want{true, 200, ""})
		check(t, tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"sub": "dave", "iat": time.Now().Add(-2 * time.Hour).Unix()})), nil),
			want{false, 401, "subject_revoked"})
	})
	t.Run("ok/deleting a revocation lets the token pass again", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"jti": "jti-undo"})
		_, rec := tb.admin(t, "POST", "/v1/admin/revocations", fmt.Sprintf(`{"kind":"jti","iss":%q,"value":"jti-undo"}`, es.URL()))
		check(t, tb.decide(t, bearer(tok), nil), want{false, 401, "token_revoked"})
		if status, _ := tb.admin(t, "DELETE", "/v1/admin/revocations/"+rec["id"].(string), ""); status != http.StatusNoContent {
			t.Fatalf("DELETE = %d", status)
		}
		check(t, tb.decide(t, bearer(tok), nil), want{true, 200, ""})
	})
	t.Run("ok/list and get", func(t *testing.T) {
		status, out := tb.admin(t, "GET", "/v1/admin/revocations?kind=subject&iss="+url.QueryEscape(es.URL())+"&value=carol", "")
		list, _ := out["revocations"].([]any)
		if status != 200 || len(list) != 1 {
			t.Fatalf("GET list = %d %v", status, out)
		}
		id := list[0].(map[string]any)["id"].(string)
		if status, rec := tb.admin(t, "GET", "/v1/admin/revocations/"+id, ""); status != 200 || rec["value"] != "carol" {
			t.Errorf("GET one = %d %v", status, rec)
		}
	})
}

func TestUserEventsCutOffTheSubject(t *testing.T) {
	tb := newStateTestbed(t)
	es := tb.issuers["ES256"]
	for _, event := range []string{"logout", "disabled", "deleted", "password_changed", "role_changed", "credential_compromised"} {
		t.Run("fail/"+event, func(t *testing.T) {
			sub := "user-" + event
			tok := tb.mint(t, "ES256", map[string]any{"sub": sub, "iat": time.Now().Add(-time.Minute).Unix()})
			status, rec := tb.admin(t, "POST", "/v1/admin/user-events", fmt.Sprintf(`{"iss":%q,"sub":%q,"event":%q}`, es.URL(), sub, event))
			if status != http.StatusCreated || rec["kind"] != "subject" {
				t.Fatalf("POST /v1/admin/user-events = %d %v", status, rec)
			}
			check(t, tb.decide(t, bearer(tok), nil), want{false, 401, "subject_revoked"})
		})
	}
}

func TestAdminAPIRefusals(t *testing.T) {
	tb := newStateTestbed(t)
	tests := []struct {
		name, method, path, contentType, body, auth string
		status                                      int
	}{
		{"fail/no credential", "POST", "/v1/admin/revocations", "application/json", `{}`, "", 401},
		{"fail/wrong credential", "POST", "/v1/admin/revocations", "application/json", `{}`, "Bearer nope", 401},
		{"fail/credential as basic", "GET", "/v1/admin/revocations", "", "", "Basic " + adminCredential, 401},
		{"fail/unknown kind", "POST", "/v1/admin/revocations", "application/json", `{"kind":"user","iss":"x","value":"y"}`, "Bearer " + adminCredential, 400},
		{"fail/missing value", "POST", "/v1/admin/revocations", "application/json", `{"kind":"jti","iss":"x"}`, "Bearer " + adminCredential, 400},
		{"fail/unknown field", "POST", "/v1/admin/revocations", "application/json", `{"kind":"jti","iss":"x","value":"y","ttl":1}`, "Bearer " + adminCredential, 400},
		{"fail/not JSON", "POST", "/v1/admin/revocations", "text/plain", `x`, "Bearer " + adminCredential, 415},
		{"fail/unknown user event", "POST", "/v1/admin/user-events", "application/json", `{"iss":"x","sub":"y","event":"sneezed"}`, "Bearer " + adminCredential, 400},
		{"fail/user event in the future", "POST", "/v1/admin/user-events", "application/json", `{"iss":"x","sub":"y","event":"logout","at":"2999-01-01T00:00:00Z"}`, "Bearer " + adminCredential, 400},
		{"fail/unknown id", "DELETE", "/v1/admin/revocations/nope", "", "", "Bearer " + adminCredential, 404},
		{"fail/bad limit", "GET", "/v1/admin/revocations?limit=0", "", "", "Bearer " + adminCredential, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, p := tb.call(t, tt.method, tt.path, tt.contentType, tt.body, tt.auth)
			if status != tt.status || p["type"] == nil || p["status"] != float64(tt.status) {
				t.Errorf("%s %s = %d %v, want a %d problem", tt.method, tt.path, status, p, tt.status)
			}
		})
	}
}

func TestAdminAPIIsOffWithoutACredential(t *testing.T) {
	tb := newTestbed(t, nil)
	if status, _ := tb.call(t, "GET", "/v1/admin/revocations", "", "", "Bearer "); status != http.StatusNotFound {
		t.Errorf("admin API without a configured credential answered %d, want 404", status)
	}
}

// Revoke clients of the state testbed: web-app owns the tokens tb.mint
// mints; "svc:batch job" needs RFC 6749 §2.3.1 form-urlencoding in Basic.
const (
	webAppSecret = "web-app-secret-0123456789abcdefghijklmnop"
	otherSecret  = "other-app-secret-0123456789abcdefghijklmno"
	batchID      = "svc:batch job"
	batchSecret  = "batch secret: 0123456789abcdefghijklmnopq"
	opaqueSecret = "opaque-app-secret-0123456789abcdefghijklmn"
)

// writeSecretHash writes the hex SHA-256 of secret, as a revoke client's
// secret_file holds it.
func writeSecretHash(t testing.TB, dir, name, secret string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(secret))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func withRevokeClients(t testing.TB) func(*config.Config) {
	dir := t.TempDir()
	return func(c *config.Config) {
		// The clients are the ES256 issuer's; the testbed has four.
		var es string
		for _, is := range c.Issuers {
			if slices.Contains(is.Algorithms, "ES256") {
				es = is.Issuer
			}
		}
		c.Revoke.Clients = []config.RevokeClient{
			{ClientID: "web-app", SecretFile: writeSecretHash(t, dir, "web-app", webAppSecret), Issuer: es},
			{ClientID: "other-app", SecretFile: writeSecretHash(t, dir, "other-app", otherSecret), Issuer: es},
			{ClientID: batchID, SecretFile: writeSecretHash(t, dir, "batch", batchSecret), Issuer: es},
			{ClientID: "opaque-app", SecretFile: writeSecretHash(t, dir, "opaque-app", opaqueSecret), Issuer: "https://opaque.example.com"},
		}
	}
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// revokeCall posts an RFC 7009 request with the given headers.
func (tb *testbed) revokeCall(t *testing.T, form url.Values, headers map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", tb.pdp.URL+"/v1/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header, out
}

func TestRFC7009Revoke(t *testing.T) {
	tb := newStateTestbed(t, withRevokeClients(t))
	es := tb.issuers["ES256"]
	past := time.Now().Add(-time.Minute).Unix()
	webApp := map[string]string{"Authorization": basicAuth("web-app", webAppSecret)}
	post := func(v url.Values, id, secret string) url.Values {
		v.Set("client_id", id)
		v.Set("client_secret", secret)
		return v
	}
	type revokeCase struct {
		name    string
		token   func() string // the token to revoke; it is checked at /v1/decide
		form    func(tok string) url.Values
		headers map[string]string
		status  int    // of /v1/revoke
		error   string // of /v1/revoke
		probe   func(tok string) string
		after   want // the probe's decision afterwards
	}
	own := func() string { return tb.mint(t, "ES256", nil) }
	self := func(tok string) string { return tok }
	tokenForm := func(tok string) url.Values { return url.Values{"token": {tok}} }
	sessionAccess := func(sid string) func(string) string {
		return func(string) string { return tb.mint(t, "ES256", map[string]any{"sid": sid, "iat": past}) }
	}
	for _, tt := range []revokeCase{
		{name: "fail/no client authentication", token: own, form: tokenForm,
			status: 401, error: "invalid_client", probe: self, after: want{true, 200, ""}},
		{name: "fail/wrong secret", token: own, form: tokenForm, headers: map[string]string{"Authorization": basicAuth("web-app", otherSecret)},
			status: 401, error: "invalid_client", probe: self, after: want{true, 200, ""}},
		{name: "fail/unknown client", token: own, form: tokenForm, headers: map[string]string{"Authorization": basicAuth("nobody", webAppSecret)},
			status: 401, error: "invalid_client", probe: self, after: want{true, 200, ""}},
		{name: "fail/the access token itself as a bearer credential", token: own, form: tokenForm,
			headers: map[string]string{"Authorization": "Bearer " + tb.mint(t, "ES256", nil)},
			status:  401, error: "invalid_client", probe: self, after: want{true, 200, ""}},
		{name: "fail/client_secret_basic and client_secret_post at once", token: own,
			form:    func(tok string) url.Values { return post(tokenForm(tok), "web-app", webAppSecret) },
			headers: webApp, status: 400, error: "invalid_request", probe: self, after: want{true, 200, ""}},
		{name: "fail/Basic naming one client and client_id another", token: own,
			form:    func(tok string) url.Values { v := tokenForm(tok); v.Set("client_id", "other-app"); return v },
			headers: webApp, status: 400, error: "invalid_request", probe: self, after: want{true, 200, ""}},
		{name: "ok/client_secret_basic revokes the client's own token", token: own, form: tokenForm, headers: webApp,
			status: 200, probe: self, after: want{false, 401, "token_revoked"}},
		{name: "ok/client_secret_post revokes the client's own token", token: own,
			form:   func(tok string) url.Values { return post(tokenForm(tok), "web-app", webAppSecret) },
			status: 200, probe: self, after: want{false, 401, "token_revoked"}},
		{name: "ok/client_secret_basic with a form-urlencoded id and secret",
			token: func() string { return tb.mint(t, "ES256", map[string]any{"client_id": batchID}) }, form: tokenForm,
			headers: map[string]string{"Authorization": basicAuth(batchID, batchSecret)},
			status:  200, probe: self, after: want{false, 401, "token_revoked"}},
		{name: "fail/another client's token is not revoked", token: own, form: tokenForm,
			headers: map[string]string{"Authorization": basicAuth("other-app", otherSecret)},
			status:  200, probe: self, after: want{true, 200, ""}},
		{name: "fail/another issuer's token bearing the client's id is not revoked",
			token: func() string { return tb.mint(t, "RS256", nil) }, form: tokenForm, headers: webApp,
			status: 200, probe: self, after: want{true, 200, ""}},
		{name: "fail/another issuer's refresh token bearing the client's id revokes nothing",
			token: func() string { return mintRefresh(t, tb.issuers["RS256"], "sess-other-issuer") }, form: tokenForm, headers: webApp,
			status: 200, probe: func(string) string {
				return tb.mint(t, "RS256", map[string]any{"sid": "sess-other-issuer", "iat": past})
			}, after: want{true, 200, ""}},
		{name: "ok/a token whose exp is the last second a store can hold (2262) is revoked",
			token: func() string { return tb.mint(t, "ES256", map[string]any{"exp": int64(9223372036)}) }, form: tokenForm, headers: webApp,
			status: 200, probe: self, after: want{false, 401, "token_revoked"}},
		{name: "ok/a JWT refresh token with the hint revokes its session",
			token: func() string { return mintRefresh(t, es, "sess-hint") },
			form: func(tok string) url.Values {
				return url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}
			}, headers: webApp, status: 200, probe: sessionAccess("sess-hint"), after: want{false, 401, "session_revoked"}},
		{name: "ok/a JWT refresh token without a hint revokes its session",
			token: func() string { return mintRefresh(t, es, "sess-nohint") }, form: tokenForm, headers: webApp,
			status: 200, probe: sessionAccess("sess-nohint"), after: want{false, 401, "session_revoked"}},
		{name: "ok/a JWT refresh token with the access_token hint revokes its session",
			token: func() string { return mintRefresh(t, es, "sess-wronghint") },
			form: func(tok string) url.Values {
				return url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
			}, headers: webApp, status: 200, probe: sessionAccess("sess-wronghint"), after: want{false, 401, "session_revoked"}},
		{name: "fail/another client's refresh token revokes nothing",
			token: func() string { return mintRefresh(t, es, "sess-theirs") }, form: tokenForm,
			headers: map[string]string{"Authorization": basicAuth("other-app", otherSecret)},
			status:  200, probe: sessionAccess("sess-theirs"), after: want{true, 200, ""}},
		{name: "fail/an access token with the refresh_token hint revokes itself, not its session",
			token: func() string { return tb.mint(t, "ES256", map[string]any{"sid": "sess-access"}) },
			form: func(tok string) url.Values {
				return url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}
			}, headers: webApp, status: 200, probe: sessionAccess("sess-access"), after: want{true, 200, ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			probe := tt.probe(tok)
			status, hdr, out := tb.revokeCall(t, tt.form(tok), tt.headers)
			if status != tt.status || (tt.error != "" && out["error"] != tt.error) {
				t.Fatalf("/v1/revoke = %d %v, want %d %s", status, out, tt.status, tt.error)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") != `Basic realm="tokenguard"` {
				t.Errorf("WWW-Authenticate = %q", hdr.Get("WWW-Authenticate"))
			}
			check(t, tb.decide(t, bearer(probe), nil), tt.after)
		})
	}
	t.Run("fail/a revoked refresh token mints nothing at the token endpoint", func(t *testing.T) {
		rt, other := mintRefresh(t, es, "sess-te"), mintRefresh(t, es, "sess-te-other")
		if d := tb.decide(t, map[string]any{}, refreshGrant(other)); !d.Allow {
			t.Fatalf("a refresh token that was not revoked: %+v", d.Reasons)
		}
		if status, _, out := tb.revokeCall(t, url.Values{"token": {rt}}, webApp); status != 200 {
			t.Fatalf("revoke = %d %v", status, out)
		}
		d := tb.decide(t, map[string]any{}, refreshGrant(rt))
		if d.Allow || d.Status != 400 || len(d.codes()) == 0 || d.codes()[0] != "refresh_token_invalid" {
			t.Fatalf("the revoked refresh token at the token endpoint: %+v", d)
		}
	})
	t.Run("ok/an opaque token without jti is revoked by its hash", func(t *testing.T) {
		exp := time.Now().Add(5 * time.Minute).Unix()
		tb.introspect.answers["opaque-revocable"] = struct {
			status int
			body   string
		}{200, fmt.Sprintf(`{"active":true,"sub":"bob","client_id":"opaque-app","scope":"accounts:read","aud":%q,"exp":%d,"iat":%d}`, testAudience, exp, time.Now().Unix())}
		check(t, tb.decide(t, bearer("opaque-revocable"), nil), want{true, 200, ""})
		opaqueApp := map[string]string{"Authorization": basicAuth("opaque-app", opaqueSecret)}
		if status, _, out := tb.revokeCall(t, url.Values{"token": {"opaque-revocable"}}, opaqueApp); status != 200 {
			t.Fatalf("status %d %v", status, out)
		}
		check(t, tb.decide(t, bearer("opaque-revocable"), nil), want{false, 401, "token_revoked"})
	})
	t.Run("fail/an opaque token of another issuer bearing the client's id is not revoked", func(t *testing.T) {
		exp := time.Now().Add(5 * time.Minute).Unix()
		tb.introspect.answers["opaque-namesake"] = struct {
			status int
			body   string
		}{200, fmt.Sprintf(`{"active":true,"sub":"bob","client_id":"web-app","scope":"accounts:read","aud":%q,"exp":%d,"iat":%d}`, testAudience, exp, time.Now().Unix())}
		if status, _, out := tb.revokeCall(t, url.Values{"token": {"opaque-namesake"}}, webApp); status != 200 {
			t.Fatalf("status %d %v", status, out)
		}
		check(t, tb.decide(t, bearer("opaque-namesake"), nil), want{true, 200, ""})
	})
	t.Run("fail/a forged token revokes nothing", func(t *testing.T) {
		victim := tb.mint(t, "ES256", map[string]any{"jti": "victim"})
		attacker, _ := devissuer.New(es.URL(), "ES256")
		forged, _ := attacker.Mint(map[string]any{"aud": testAudience, "sub": "alice", "client_id": "web-app", "jti": "victim"}, devissuer.WithHeader("kid", es.KID()))
		status, _, _ := tb.revokeCall(t, url.Values{"token": {forged}}, webApp)
		if status != 200 {
			t.Fatalf("RFC 7009 answers 200 for an invalid token, got %d", status)
		}
		check(t, tb.decide(t, bearer(victim), nil), want{true, 200, ""})
	})
	for _, tt := range []struct{ name, contentType, body string }{
		{"fail/no token", "application/x-www-form-urlencoded", "token_type_hint=access_token"},
		{"fail/two tokens", "application/x-www-form-urlencoded", "token=a&token=b"},
		{"fail/JSON body", "application/json", `{"token":"a"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, out := tb.call(t, "POST", "/v1/revoke", tt.contentType, tt.body, webApp["Authorization"])
			if status != 400 || out["error"] != "invalid_request" {
				t.Errorf("= %d %v, want 400 invalid_request", status, out)
			}
		})
	}
}

// A gateway authenticated with the decide.auth credential may revoke any
// client's tokens; without revoke clients or decide.auth, /v1/revoke is
// not served at all.
func TestRFC7009RevokeByTheGatewayAndOffWithoutAuthentication(t *testing.T) {
	credFile := filepath.Join(t.TempDir(), "gateway")
	if err := os.WriteFile(credFile, []byte("gateway-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := newTestbed(t, func(c *config.Config) { c.Decide.Auth.CredentialFile = credFile })
	tok := tb.mint(t, "ES256", map[string]any{"client_id": "any-client", "jti": "gw-1"})
	if status, hdr, out := tb.revokeCall(t, url.Values{"token": {tok}}, nil); status != 401 || out["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("without the gateway credential: %d %v", status, out)
	}
	if status, _, out := tb.revokeCall(t, url.Values{"token": {tok}}, map[string]string{"X-Tokenguard-Gateway": "wrong"}); status != 401 {
		t.Fatalf("with a wrong gateway credential: %d %v", status, out)
	}
	if status, _, out := tb.revokeCall(t, url.Values{"token": {tok}}, map[string]string{"X-Tokenguard-Gateway": "gateway-credential"}); status != 200 {
		t.Fatalf("with the gateway credential: %d %v", status, out)
	}
	iss := tb.issuers["ES256"].URL()
	if r, ok, err := tb.app.store.CheckRevocation(context.Background(), store.TokenRef{Issuer: iss, JTI: "gw-1"}); !ok || err != nil {
		t.Fatalf("the gateway's revocation was not stored: %+v %v %v", r, ok, err)
	}

	open := newTestbed(t, nil)
	if status, _, _ := open.revokeCall(t, url.Values{"token": {tok}}, nil); status != http.StatusNotFound {
		t.Errorf("/v1/revoke without any client authentication configured = %d, want 404", status)
	}
}

func TestSharedSignalsPushStopsTheNextDecision(t *testing.T) {
	tb := newStateTestbed(t)
	es := tb.issuers["ES256"]
	tok := tb.mint(t, "ES256", map[string]any{"sub": "erin", "iat": time.Now().Add(-time.Minute).Unix()})
	check(t, tb.decide(t, bearer(tok), nil), want{true, 200, ""})
	header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "secevent+jwt", "kid": tb.transmitter.KID()})
	payload, _ := json.Marshal(map[string]any{
		"iss": tb.transmitter.URL(), "aud": "https://pdp.example/ssf", "iat": time.Now().Unix(), "jti": "set-1",
		"sub_id": map[string]any{"format": "iss_sub", "iss": es.URL(), "sub": "erin"},
		"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
	})
	set, err := devissuer.SignCompact(tb.transmitter.PrivateKey(), "ES256", header, payload)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a duplicate jti gets the same answer
		status, out := tb.call(t, "POST", "/v1/ssf/events", "application/secevent+jwt", set, "")
		if status != http.StatusAccepted {
			t.Fatalf("push = %d %v", status, out)
		}
	}
	check(t, tb.decide(t, bearer(tok), nil), want{false, 401, "subject_revoked"})

	status, out := tb.call(t, "POST", "/v1/ssf/events", "application/secevent+jwt", set[:len(set)-4]+"AAAA", "")
	if status != 400 || out["err"] == nil {
		t.Errorf("a SET with a broken signature = %d %v, want 400 with err", status, out)
	}
}

func TestStoreFailureIsAPolicyErrorNotAnAllow(t *testing.T) {
	tb := newTestbed(t, nil)
	tok := tb.mint(t, "ES256", nil)
	check(t, tb.decide(t, bearer(tok), nil), want{true, 200, ""})
	if err := tb.app.store.Close(); err != nil {
		t.Fatal(err)
	}
	body := `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42","headers":{"authorization":"Bearer ` + tok + `"}}}`
	status, out := tb.call(t, "POST", "/v1/decide", "application/json", body, "")
	if status != 500 || out["allow"] != false || !strings.Contains(fmt.Sprint(out["reasons"]), "policy_error") {
		t.Errorf("decide with a closed store = %d %v, want a 500 policy_error deny", status, out)
	}
}

// TestStrictJSONOnEveryEndpoint sends the JSON two readers could read
// differently to every endpoint that accepts JSON: a member named twice
// (with JSON bodies also in capitals, which encoding/json folds into the
// same field), an unpaired
// surrogate escape (which encoding/json turns into U+FFFD), invalid UTF-8
// and a second value after the first. Each is refused with 400; nothing is
// stored.
func TestStrictJSONOnEveryEndpoint(t *testing.T) {
	tb := newStateTestbed(t)
	es := tb.issuers["ES256"]
	tok := tb.mint(t, "ES256", nil)
	setWith := func(member, jti string) string {
		payload := `{"iss":"` + tb.transmitter.URL() + `","aud":"https://pdp.example/ssf","iat":` + fmt.Sprint(time.Now().Unix()) +
			`,` + member + `"jti":"` + jti + `","sub_id":{"format":"iss_sub","iss":"` + es.URL() + `","sub":"strict-3"},` +
			`"events":{"https://schemas.openid.net/secevent/risc/event-type/account-disabled":{}}}`
		header := `{"alg":"ES256","typ":"secevent+jwt","kid":"` + tb.transmitter.KID() + `"}`
		set, err := devissuer.SignCompact(tb.transmitter.PrivateKey(), "ES256", []byte(header), []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	endpoints := []struct {
		path, contentType string
		ok                int
		body              func(string) string
	}{
		{"/v1/decide", "application/json", 200, func(member string) string {
			return `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42",` + member +
				`"headers":{"authorization":"Bearer ` + tok + `"}}}`
		}},
		{"/v1/admin/revocations", "application/json", 201, func(member string) string {
			return `{"kind":"jti","iss":"https://as.example",` + member + `"value":"strict-1"}`
		}},
		{"/v1/admin/user-events", "application/json", 201, func(member string) string {
			return `{"iss":"https://as.example",` + member + `"sub":"strict-2","event":"logout"}`
		}},
		{"/v1/ssf/events", "application/secevent+jwt", 202, func(member string) string { return setWith(member, "strict-3") }},
	}
	attacks := []struct{ name, member string }{
		{"a member named twice", `"jti":"a","jti":"b",`},
		{"an unpaired high surrogate", `"note":"\ud800",`},
		{"an unpaired low surrogate", `"note":"\udc00x",`},
		{"invalid UTF-8", "\"note\":\"\xff\","},
	}
	for _, ep := range endpoints {
		// The endpoint's own members, named twice.
		dup := map[string]string{
			"/v1/decide":            `"url":"https://api.example.com/v1/admin",`,
			"/v1/admin/revocations": `"value":"other",`,
			"/v1/admin/user-events": `"sub":"other",`,
			"/v1/ssf/events":        `"jti":"other",`,
		}[ep.path]
		// One of the endpoint's own string members with an unpaired surrogate.
		surrogate := map[string]string{
			"/v1/decide":            ep.body(`"remote_ip":"\ud800",`),
			"/v1/admin/revocations": ep.body(`"reason":"\ud800",`),
			"/v1/admin/user-events": `{"iss":"https://as.example","sub":"strict-\ud800","event":"logout"}`,
			"/v1/ssf/events":        setWith("", `strict-\ud800`),
		}[ep.path]
		cases := []struct{ name, body string }{
			{"fail/its own member named twice", ep.body(dup)},
			{"fail/its own member with an unpaired surrogate", surrogate},
		}
		for _, a := range attacks {
			cases = append(cases, struct{ name, body string }{"fail/" + a.name, ep.body(a.member)})
		}
		if ep.contentType == "application/json" {
			cases = append(cases, struct{ name, body string }{"fail/a second value after the first", ep.body("") + ` {}`})
			// The name in another case, to the same field.
			upper := strings.ToUpper(dup[:strings.Index(dup[1:], `"`)+2]) + dup[strings.Index(dup[1:], `"`)+2:]
			cases = append(cases, struct{ name, body string }{"fail/its own member again in capitals", ep.body(upper)})
		}
		for _, tt := range cases {
			t.Run(ep.path+"/"+tt.name, func(t *testing.T) {
				status, out := tb.call(t, "POST", ep.path, ep.contentType, tt.body, "Bearer "+adminCredential)
				if status != 400 {
					t.Fatalf("= %d %v, want 400", status, out)
				}
			})
		}
		t.Run(ep.path+"/ok/the body without an attack", func(t *testing.T) {
			if status, out := tb.call(t, "POST", ep.path, ep.contentType, ep.body(""), "Bearer "+adminCredential); status != ep.ok {
				t.Fatalf("= %d %v, want %d", status, out, ep.ok)
			}
		})
	}
}
