package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

var update = flag.Bool("update", false, "rewrite the golden files under docs/examples from real responses")

const (
	openAPIFile = "../../docs/openapi.yaml"
	examplesDir = "../../docs/examples"
)

// exchange is one request to a real server and the status it must get.
// A golden name makes its (stabilised) JSON body a file under
// docs/examples that the docs quote.
type exchange struct {
	name   string
	golden string
	method string
	path   string
	header map[string]string
	body   func() string
	status int
}

// recorded is an exchange with its real request and response.
type recorded struct {
	exchange
	req     *http.Request
	reqBody string
	resp    *http.Response
	body    []byte
}

// apiTestbed is a real PDP with every endpoint on: the admin API, RFC
// 7009 revocation, SET push, forward-auth from loopback, /metrics and
// /v1/status.
func apiTestbed(t *testing.T) *stateTestbed {
	t.Helper()
	return newStateTestbed(t, withRevokeClients(t), func(c *config.Config) {
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	})
}

// apiExchanges are the requests whose responses the OpenAPI description
// must admit: for each endpoint an allow or success, a deny, and errors.
func apiExchanges(t *testing.T, tb *stateTestbed) []exchange {
	es := tb.issuers["ES256"]
	allowTok := tb.mint(t, "ES256", map[string]any{"jti": "jti-allow"})
	faTok := tb.mint(t, "ES256", map[string]any{"jti": "jti-forward"})
	// Fixed times: the deny's message names the expiry, and the docs quote it.
	expiredAt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expired := tb.mint(t, "ES256", map[string]any{"iat": expiredAt.Add(-time.Hour).Unix(), "exp": expiredAt.Unix()})
	revokeTok := tb.mint(t, "ES256", map[string]any{"jti": "jti-revoke"})
	now := time.Now()
	overLongTok := tb.mint(t, "ES256", map[string]any{"jti": "jti-long", "iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()})
	noScopeTok := tb.mint(t, "ES256", map[string]any{"jti": "jti-scope", "scope": "openid"})
	decideBody := func(headers map[string]any, path string) func() string {
		return func() string {
			b, _ := json.Marshal(map[string]any{"request": map[string]any{
				"method": "GET", "url": "https://api.example.com" + path, "headers": headers, "remote_ip": "203.0.113.7",
			}})
			return string(b)
		}
	}
	text := func(s string) func() string { return func() string { return s } }
	jsonCT := map[string]string{"Content-Type": "application/json"}
	admin := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + adminCredential}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": basicAuth("web-app", webAppSecret)}
	nginx := func(tok string) map[string]string {
		h := map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/v1/accounts/42", "X-Original-Proto": "https",
			"Host": "api.example.com", "X-Real-Ip": "203.0.113.7"}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return h
	}
	set := func(jti string, iat time.Time) func() string {
		return func() string {
			header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "secevent+jwt", "kid": tb.transmitter.KID()})
			payload, _ := json.Marshal(map[string]any{
				"iss": tb.transmitter.URL(), "aud": "https://pdp.example/ssf", "iat": iat.Unix(), "jti": jti,
				"sub_id": map[string]any{"format": "iss_sub", "iss": es.URL(), "sub": "mallory"},
				"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
			})
			s, err := devissuer.SignCompact(tb.transmitter.PrivateKey(), "ES256", header, payload)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	setCT := map[string]string{"Content-Type": "application/secevent+jwt"}
	revocation := fmt.Sprintf(`{"kind":"subject","iss":%q,"value":"carol","reason":"account disabled"}`, es.URL())
	return []exchange{
		{name: "decide/allow", golden: "decide-allow.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: decideBody(map[string]any{"authorization": "Bearer " + allowTok}, "/v1/accounts/42"), status: 200},
		{name: "decide/deny expired token", golden: "decide-deny-expired.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: decideBody(map[string]any{"authorization": "Bearer " + expired}, "/v1/accounts/42"), status: 200},
		{name: "decide/deny no token", golden: "decide-deny-no-token.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: decideBody(map[string]any{}, "/v1/accounts/42"), status: 200},
		{name: "decide/deny path refused", golden: "decide-path-refused.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: decideBody(map[string]any{"authorization": "Bearer " + allowTok}, `/v1/accounts/42%5C..%5C..%5Cadmin%5Cusers`), status: 200},
		{name: "decide/deny path parameters", golden: "decide-path-parameters.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: decideBody(map[string]any{"authorization": "Bearer " + allowTok}, "/v1/accounts/42;jsessionid=x"), status: 200},
		{name: "decide/error malformed JSON", golden: "decide-problem-malformed.json", method: "POST", path: "/v1/decide", header: jsonCT,
			body: text(`{"request":`), status: 400},
		{name: "decide/error not JSON", method: "POST", path: "/v1/decide", header: map[string]string{"Content-Type": "text/plain"},
			body: text(`hello`), status: 415},
		{name: "decide/error too large", method: "POST", path: "/v1/decide", header: jsonCT,
			body: func() string { return `{"request":{"method":"GET","url":"` + strings.Repeat("a", 1<<20) + `"}}` }, status: 413},

		{name: "forward-auth/allow", method: "GET", path: "/v1/forward-auth", header: nginx(faTok), status: 200},
		{name: "forward-auth/allow with a path", method: "GET", path: "/v1/forward-auth/check", header: nginx(faTok), status: 200},
		{name: "forward-auth/deny", golden: "forward-auth-deny.json", method: "GET", path: "/v1/forward-auth", header: nginx(""), status: 401},
		{name: "forward-auth/deny path refused", golden: "forward-auth-path-refused.json", method: "GET", path: "/v1/forward-auth",
			header: with2(nginx(faTok), "X-Original-Uri", `/v1/accounts/42%5C..%5C..%5Cadmin%5Cusers`), status: 400},
		{name: "forward-auth/error no request line", golden: "forward-auth-problem.json", method: "GET", path: "/v1/forward-auth",
			header: map[string]string{"Authorization": "Bearer " + faTok}, status: 400},

		{name: "admin/create revocation", golden: "admin-revocation.json", method: "POST", path: "/v1/admin/revocations", header: admin,
			body: text(revocation), status: 201},
		{name: "admin/list revocations", golden: "admin-revocations.json", method: "GET", path: "/v1/admin/revocations?kind=subject", header: admin, status: 200},
		{name: "admin/get revocation", method: "GET", path: "/v1/admin/revocations/{id}", header: admin, status: 200},
		{name: "admin/delete revocation", method: "DELETE", path: "/v1/admin/revocations/{id}", header: admin, status: 204},
		{name: "admin/get deleted revocation", golden: "admin-problem-not-found.json", method: "GET", path: "/v1/admin/revocations/{id}", header: admin, status: 404},
		{name: "admin/error bad kind", golden: "admin-problem-bad-kind.json", method: "POST", path: "/v1/admin/revocations", header: admin,
			body: text(`{"kind":"everything","value":"x"}`), status: 400},
		{name: "admin/error no credential", golden: "admin-problem-unauthorized.json", method: "GET", path: "/v1/admin/revocations", header: jsonCT, status: 401},
		{name: "admin/user event", golden: "admin-user-event.json", method: "POST", path: "/v1/admin/user-events", header: admin,
			body: text(fmt.Sprintf(`{"iss":%q,"sub":"dave","event":"password_changed"}`, es.URL())), status: 201},
		{name: "admin/error user event", method: "POST", path: "/v1/admin/user-events", header: admin,
			body: text(`{"sub":"dave","event":"sneezed"}`), status: 400},
		{name: "admin/backup", method: "GET", path: "/v1/admin/backup", header: admin, status: 200},
		{name: "admin/list issuers", golden: "admin-issuers.json", method: "GET", path: "/v1/admin/issuers", header: admin, status: 200},
		{name: "admin/explain a deny", golden: "admin-explain-deny.json", method: "POST", path: "/v1/admin/explain", header: admin,
			body: decideBody(map[string]any{"authorization": "Bearer " + expired}, "/v1/accounts/42"), status: 200},
		{name: "admin/explain an allow", golden: "admin-explain-allow.json", method: "POST", path: "/v1/admin/explain", header: admin,
			body: decideBody(map[string]any{"authorization": "Bearer " + allowTok}, "/v1/accounts/42"), status: 200},
		{name: "admin/explain an over-long token", golden: "admin-explain-lifetime.json", method: "POST", path: "/v1/admin/explain", header: admin,
			body: decideBody(map[string]any{"authorization": "Bearer " + overLongTok}, "/v1/accounts/42"), status: 200},
		{name: "admin/explain a missing scope", golden: "admin-explain-scope.json", method: "POST", path: "/v1/admin/explain", header: admin,
			body: decideBody(map[string]any{"authorization": "Bearer " + noScopeTok}, "/v1/accounts/42"), status: 200},
		{name: "admin/explain an unknown route", golden: "admin-explain-route.json", method: "POST", path: "/v1/admin/explain", header: admin,
			body: decideBody(map[string]any{"authorization": "Bearer " + allowTok}, "/v1/payments"), status: 200},
		{name: "admin/error explain without credential", method: "POST", path: "/v1/admin/explain", header: jsonCT,
			body: decideBody(map[string]any{}, "/v1/accounts/42"), status: 401},
		{name: "admin/error explain not JSON", method: "POST", path: "/v1/admin/explain",
			header: map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + adminCredential}, body: text(`hello`), status: 415},

		{name: "revoke/revoked", method: "POST", path: "/v1/revoke", header: form,
			body: text(url.Values{"token": {revokeTok}}.Encode()), status: 200},
		{name: "revoke/error client authentication", golden: "revoke-invalid-client.json", method: "POST", path: "/v1/revoke",
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": basicAuth("web-app", "wrong")},
			body:   text(url.Values{"token": {revokeTok}}.Encode()), status: 401},
		{name: "revoke/error two methods", golden: "revoke-invalid-request.json", method: "POST", path: "/v1/revoke", header: form,
			body: text(url.Values{"token": {revokeTok}, "client_id": {"web-app"}, "client_secret": {webAppSecret}}.Encode()), status: 400},

		{name: "ssf/accepted", method: "POST", path: "/v1/ssf/events", header: setCT, body: set("set-openapi-1", time.Now()), status: 202},
		{name: "ssf/error too old", golden: "ssf-too-old.json", method: "POST", path: "/v1/ssf/events", header: setCT,
			body: set("set-openapi-2", time.Now().Add(-30*24*time.Hour)), status: 400},
		{name: "ssf/error in the future", golden: "ssf-in-the-future.json", method: "POST", path: "/v1/ssf/events", header: setCT,
			body: set("set-openapi-3", time.Now().Add(time.Hour)), status: 400},
		{name: "ssf/error content type", method: "POST", path: "/v1/ssf/events", header: jsonCT, body: text(`{}`), status: 400},

		{name: "status", method: "GET", path: "/v1/status", status: 200},
		{name: "healthz", golden: "healthz.json", method: "GET", path: "/healthz", status: 200},
		{name: "readyz", golden: "readyz.json", method: "GET", path: "/readyz", status: 200},
		{name: "metrics", method: "GET", path: "/metrics", status: 200},
	}
}

// with2 is h with k set to v.
func with2(h map[string]string, k, v string) map[string]string {
	h[k] = v
	return h
}

// runExchanges sends every exchange to a fresh real server, in order
// ({id} is the id of the last revocation created).
func runExchanges(t *testing.T) (*stateTestbed, []recorded) {
	t.Helper()
	tb := apiTestbed(t)
	var out []recorded
	lastID := ""
	for _, ex := range apiExchanges(t, tb) {
		var (
			body    io.Reader
			reqBody string
		)
		if ex.body != nil {
			reqBody = ex.body()
			body = strings.NewReader(reqBody)
		}
		path := strings.ReplaceAll(ex.path, "{id}", lastID)
		req, err := http.NewRequest(ex.method, tb.pdp.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range ex.header {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != ex.status {
			t.Fatalf("%s: %s %s = %d %s, want %d", ex.name, ex.method, path, resp.StatusCode, truncateForLog(raw), ex.status)
		}
		if ex.method == "POST" && ex.path == "/v1/admin/revocations" && resp.StatusCode == 201 {
			var rec struct{ ID string }
			_ = json.Unmarshal(raw, &rec)
			lastID = rec.ID
		}
		// The validator reads the body again.
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		out = append(out, recorded{exchange: ex, req: req, reqBody: reqBody, resp: resp, body: raw})
	}
	return tb, out
}

func truncateForLog(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func loadOpenAPI(t *testing.T) libopenapi.Document {
	t.Helper()
	spec, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if v := doc.GetVersion(); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("docs/openapi.yaml is OpenAPI %s, want 3.1", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("docs/openapi.yaml: %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", se.FieldPath+" ("+se.KeywordLocation+")", se.Reason)
			}
		}
	}
	if _, errs := doc.BuildV3Model(); errs != nil {
		t.Errorf("docs/openapi.yaml does not build: %v", errs)
	}
}

func TestOpenAPIRealResponses(t *testing.T) {
	v, errs := validator.NewValidator(loadOpenAPI(t))
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: %v", errs)
	}
	tb, records := runExchanges(t)
	golden := map[string][]byte{}
	for _, rec := range records {
		t.Run(rec.name, func(t *testing.T) {
			if ok, verrs := v.ValidateHttpResponse(rec.req, rec.resp); !ok {
				for _, e := range verrs {
					t.Errorf("%s %s → %d does not match docs/openapi.yaml: %s (%s)", rec.method, rec.req.URL.Path, rec.resp.StatusCode, e.Message, e.Reason)
					for _, se := range e.SchemaValidationErrors {
						t.Errorf("  %s: %s", se.FieldPath+" ("+se.KeywordLocation+")", se.Reason)
					}
				}
				t.Logf("body: %s", truncateForLog(rec.body))
			}
			if rec.resp.StatusCode < 400 && rec.reqBody != "" && strings.HasPrefix(rec.req.Header.Get("Content-Type"), "application/json") {
				// A body the server accepted is one the document describes.
				req := rec.req.Clone(t.Context())
				req.Body = io.NopCloser(strings.NewReader(rec.reqBody))
				if ok, verrs := v.ValidateHttpRequest(req); !ok {
					for _, e := range verrs {
						t.Errorf("%s %s: the request body the server accepted does not match docs/openapi.yaml: %s (%s)", rec.method, rec.req.URL.Path, e.Message, e.Reason)
						for _, se := range e.SchemaValidationErrors {
							t.Errorf("  %s: %s", se.FieldPath+" ("+se.KeywordLocation+")", se.Reason)
						}
					}
				}
			}
			if rec.golden != "" {
				golden[rec.golden] = stableExample(t, tb, rec.body)
			}
		})
	}
	for name, b := range golden {
		path := filepath.Join(examplesDir, name)
		if *update {
			if err := os.MkdirAll(examplesDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(have, b) {
			t.Errorf("docs/examples/%s is not what the server answers now; regenerate with\n"+
				"  go test ./cmd/pdp -run 'TestOpenAPIRealResponses' -update\nand update the docs blocks that quote it.\nnow:\n%s", name, b)
		}
	}
}

// TestDecisionJSONHasNoNullListOrMap: every JSON answer of every endpoint
// writes an empty list as [] and an empty map as {}; null is left only
// where a value is absent (token on a decision without one).
func TestDecisionJSONHasNoNullListOrMap(t *testing.T) {
	_, records := runExchanges(t)
	allowedNull := map[string]bool{"token": true}
	for _, rec := range records {
		if !strings.Contains(rec.resp.Header.Get("Content-Type"), "json") {
			continue
		}
		var v any
		if err := json.Unmarshal(rec.body, &v); err != nil {
			t.Errorf("%s: not JSON: %v", rec.name, err)
			continue
		}
		for _, p := range nullPaths(v, "") {
			if !allowedNull[p[strings.LastIndex(p, ".")+1:]] {
				t.Errorf("%s: %s is null in %s", rec.name, p, truncateForLog(rec.body))
			}
		}
	}
}

func nullPaths(v any, at string) []string {
	var out []string
	switch x := v.(type) {
	case nil:
		return []string{at}
	case map[string]any:
		for k, e := range x {
			out = append(out, nullPaths(e, at+"."+k)...)
		}
	case []any:
		for i, e := range x {
			out = append(out, nullPaths(e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

// stableExample is body with what changes from run to run (ids, times,
// loopback URLs of the test issuers) replaced by fixed example values,
// pretty-printed.
func stableExample(t *testing.T, tb *stateTestbed, body []byte) []byte {
	t.Helper()
	s := string(body)
	for alg, iss := range tb.issuers {
		s = strings.ReplaceAll(s, iss.URL(), "https://issuer.example/"+strings.ToLower(alg))
	}
	s = strings.ReplaceAll(s, tb.transmitter.URL(), "https://transmitter.example")
	for key, example := range exampleValues {
		re := regexp.MustCompile(`"` + key + `":"[^"]+"`)
		s = re.ReplaceAllLiteralString(s, `"`+key+`":"`+example+`"`)
	}
	s = hexID.ReplaceAllString(s, `"`+exampleValues["decision_id"]+`"`)
	// How long ago a token was issued depends on when the test ran.
	s = ageSeconds.ReplaceAllString(s, `"age_s":0`)
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace([]byte(s)), "", "  "); err != nil {
		t.Fatalf("golden body is not JSON: %v: %s", err, body)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

var exampleValues = map[string]string{
	"decision_id": "4f1c2b7e9a0d4e8c9b3a6f5e2d1c0b9a",
	"id":          "QXTT4N2XH5VJ3B6M7CDRTAWEAY",
	"created_at":  "2026-12-05T09:30:00Z",
	"not_before":  "2026-12-05T09:30:00Z",
	"expires_at":  "2027-01-04T09:30:00Z",
	"revision":    "205272ce958148ee",
}

var hexID = regexp.MustCompile(`"[0-9a-f]{32}"`)

var ageSeconds = regexp.MustCompile(`"age_s":[0-9]+`)

// TestOpenAPICoversEveryRoute walks the routes chi serves (every feature
// on, and dev mode's) and the paths of docs/openapi.yaml: each is in the
// other.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	model, errs := loadOpenAPI(t).BuildV3Model()
	if errs != nil {
		t.Fatal(errs)
	}
	documented := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	tb := apiTestbed(t)
	served := map[string]bool{}
	walk := func(r chi.Routes) {
		err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if method == http.MethodConnect || method == "QUERY" {
				return nil // OpenAPI 3.1 has no CONNECT or QUERY operation
			}
			served[method+" "+openAPIPath(route)] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	routes, ok := tb.app.handler.(chi.Routes)
	if !ok {
		t.Fatalf("the handler is a %T, not a chi router", tb.app.handler)
	}
	walk(routes)
	iss, err := devissuer.New("http://127.0.0.1:8181/dev", "ES256")
	if err != nil {
		t.Fatal(err)
	}
	dev := chi.NewRouter()
	(&devMode{issuer: iss}).mount(dev)
	walk(dev)

	for _, k := range sortedKeys(served) {
		if !documented[k] {
			t.Errorf("%s is served but not in docs/openapi.yaml", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !served[k] {
			t.Errorf("%s is in docs/openapi.yaml but not served", k)
		}
	}
}

// openAPIPath turns a chi pattern into an OpenAPI path template: chi's
// trailing wildcard is the path parameter {path}.
func openAPIPath(route string) string {
	route = strings.TrimSuffix(route, "/") // chi.Walk writes a mounted "/" as a trailing slash
	if strings.HasSuffix(route, "/*") {
		route = strings.TrimSuffix(route, "*") + "{path}"
	}
	if route == "" {
		route = "/"
	}
	return route
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var _ = context.Background
