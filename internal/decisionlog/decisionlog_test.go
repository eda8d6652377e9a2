package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

// Secrets a gateway might put where they do not belong; none may survive
// into a log line or an uploaded event.
const (
	secretBearer = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LWJlYXJlcg.c2lnbmF0dXJl"
	secretProof  = "eyJ0eXAiOiJkcG9wK2p3dCJ9.c2VjcmV0LXByb29m.cHJvb2ZzaWc"
	secretAPIKey = "k3y-0f-the-api-never-logged"
	secretQuery  = "query-token-never-logged"
	logCred      = "log-service-credential-8d3f"
)

// logService is a remote decision-log service: it records the events it
// receives and how they came.
type logService struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []map[string]any
	raw      [][]byte
	encoding []string
	auth     []string
	paths    []string
}

func newLogService(t *testing.T) *logService {
	t.Helper()
	s := &logService{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.encoding = append(s.encoding, r.Header.Get("Content-Encoding"))
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.paths = append(s.paths, r.URL.RequestURI())
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, "not gzip", http.StatusBadRequest)
			return
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		s.raw = append(s.raw, plain)
		var batch []map[string]any
		if err := json.Unmarshal(plain, &batch); err != nil {
			http.Error(w, "not a JSON array", http.StatusBadRequest)
			return
		}
		s.events = append(s.events, batch...)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *logService) received() ([]map[string]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...), string(bytes.Join(s.raw, []byte("\n")))
}

// syncBuffer is a log destination the plugin's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// lines returns the JSON log records with the given message.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, l)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

type bed struct {
	logger  *Logger
	console *syncBuffer
	service *logService
}

func newBed(t *testing.T, cfg config.DecisionLogs) *bed {
	t.Helper()
	b := &bed{console: &syncBuffer{}}
	if cfg.URL == "remote" {
		b.service = newLogService(t)
		cfg.URL = b.service.srv.URL + "/v1/logs?tenant=t1"
		cred := filepath.Join(t.TempDir(), "cred")
		if err := os.WriteFile(cred, []byte(logCred+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.CredentialsFile = cred
	}
	l, err := New(context.Background(), cfg, Options{
		Logger:  slog.New(slog.NewJSONHandler(b.console, nil)),
		Console: b.console,
		Labels:  map[string]string{"environment": "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Stop(ctx)
	})
	b.logger = l
	return b
}

// consoleLines writes what is queued and returns the console's decision
// lines.
func (b *bed) consoleLines(t *testing.T) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.logger.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return b.console.lines(t, "Decision Log")
}

func (b *bed) flush(t *testing.T) ([]map[string]any, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.logger.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return b.service.received()
}

// input is a policy input that carries, against the rules, a bearer
// token, a proof, an API key and a token in the query: the mask must
// erase them.
func input(t *testing.T) ast.Value {
	t.Helper()
	v, err := ast.InterfaceToValue(map[string]any{
		"request": map[string]any{
			"method": "GET",
			"url":    "https://api.example.com/v1/accounts/42?access_token=" + secretQuery,
			"query":  map[string]any{"access_token": []any{secretQuery}},
			"headers": map[string]any{
				"authorization": []any{"Bearer " + secretBearer},
				"dpop":          []any{secretProof},
				"x-api-key":     []any{secretAPIKey},
				"user-agent":    []any{"curl/8"},
			},
		},
		"token": map[string]any{"present": true, "valid": true, "hash": "aGFzaA", "claims": map[string]any{"sub": "alice"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func allow(t *testing.T) *decision.Decision {
	return &decision.Decision{
		ID: decision.NewID(), Allow: true, Status: 200,
		Reasons: []policy.Reason{}, Warnings: []policy.Reason{},
		UpstreamHeaders: map[string]string{"x-tokenguard-subject": "alice"},
		Token:           &decision.TokenSummary{Issuer: "https://as.example.com", Subject: "alice", ClientID: "web-app", GrantType: "authorization_code", Scopes: []string{"accounts:read"}},
		Policy:          decision.PolicyRef{Revision: "rev-1", Module: "grants.authorization_code"},
		TokenHash:       "dG9rZW4taGFzaA", GrantType: "authorization_code", Input: input(t),
	}
}

func deny(t *testing.T) *decision.Decision {
	return &decision.Decision{
		ID: decision.NewID(), Allow: false, Status: 401,
		Reasons:  []policy.Reason{{Code: "token_expired", Message: "token expired"}},
		Warnings: []policy.Reason{},
		Headers:  map[string]string{"www-authenticate": `Bearer error="invalid_token"`},
		Policy:   decision.PolicyRef{Revision: "rev-1"}, TokenHash: "ZXhwaXJlZA", Input: input(t),
	}
}

func assertNoSecrets(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{secretBearer, secretProof, secretAPIKey, secretQuery, logCred} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains a secret (%.12s...)", where, secret)
		}
	}
}

func TestConsoleSink(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	a, d := allow(t), deny(t)
	b.logger.Log(context.Background(), Entry{Decision: a, Latency: 3 * time.Millisecond, RequestedBy: "10.0.0.1:5000"})
	b.logger.Log(context.Background(), Entry{Decision: d, Latency: time.Millisecond})

	lines := b.consoleLines(t)
	if len(lines) != 2 {
		t.Fatalf("console decision lines = %d, want 2; log:\n%s", len(lines), b.console)
	}
	first := lines[0]
	if first["decision_id"] != a.ID || first["path"] != "tokenguard/main/decision" || first["requested_by"] != "10.0.0.1:5000" {
		t.Errorf("event header = %v", first)
	}
	c, _ := first["custom"].(map[string]any)
	if c["allow"] != true || c["grant_type"] != "authorization_code" || c["client_id"] != "web-app" ||
		c["token_sha256"] != a.TokenHash || c["latency_ns"] != float64(3*time.Millisecond) {
		t.Errorf("custom = %v", c)
	}
	if bundles, _ := first["bundles"].(map[string]any); fmt.Sprint(bundles["policy"]) != "map[revision:rev-1]" {
		t.Errorf("bundles = %v", first["bundles"])
	}
	if labels, _ := first["labels"].(map[string]any); labels["environment"] != "test" || labels["id"] == nil {
		t.Errorf("labels = %v", first["labels"])
	}
	second, _ := lines[1]["custom"].(map[string]any)
	if codes := fmt.Sprint(second["reasons"]); codes != "[token_expired]" || second["allow"] != false {
		t.Errorf("deny custom = %v", second)
	}
	res, _ := lines[1]["result"].(map[string]any)
	if res["allow"] != false || res["status"] != float64(401) {
		t.Errorf("deny result = %v", res)
	}
	assertNoSecrets(t, "console log", b.console.String())
}

func TestAnExplanationIsLoggedAsOne(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	explained, decided := deny(t), deny(t)
	explained.Explain = true
	b.logger.Log(context.Background(), Entry{Decision: explained})
	b.logger.Log(context.Background(), Entry{Decision: decided})
	lines := b.consoleLines(t)
	if len(lines) != 2 {
		t.Fatalf("console decision lines = %d, want 2", len(lines))
	}
	for i, want := range []any{true, nil} {
		c, _ := lines[i]["custom"].(map[string]any)
		if c["explain"] != want {
			t.Errorf("line %d: custom.explain = %v, want %v", i, c["explain"], want)
		}
	}
	assertNoSecrets(t, "console log", b.console.String())
}

func TestMaskErasesCredentialsFromTheInput(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	b.logger.Log(context.Background(), Entry{Decision: deny(t)})
	lines := b.consoleLines(t)
	if len(lines) != 1 {
		t.Fatalf("console decision lines = %d, want 1", len(lines))
	}
	ev := lines[0]
	erased := fmt.Sprint(ev["erased"])
	for _, p := range []string{"/input/request/headers/authorization", "/input/request/headers/dpop", "/input/request/headers/x-api-key", "/input/request/query", "/input/request/url"} {
		if !strings.Contains(erased, p) {
			t.Errorf("erased = %s, want %s", erased, p)
		}
	}
	req := ev["input"].(map[string]any)["request"].(map[string]any)
	headers := req["headers"].(map[string]any)
	if _, ok := headers["user-agent"]; !ok || len(headers) != 1 {
		t.Errorf("headers = %v, want only user-agent left", headers)
	}
	if req["method"] != "GET" {
		t.Errorf("the rest of the input is gone: %v", req)
	}
	assertNoSecrets(t, "console log", b.console.String())
}

func TestMaskDropsAllHeadersWhenACredentialHeaderCannotBeNamed(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	d := deny(t)
	d.Input, _ = ast.InterfaceToValue(map[string]any{"request": map[string]any{"headers": map[string]any{
		"x-token%zz": []any{secretBearer}, "user-agent": []any{"curl/8"},
	}}})
	b.logger.Log(context.Background(), Entry{Decision: d})
	lines := b.consoleLines(t)
	if len(lines) != 1 {
		t.Fatalf("console decision lines = %d, want 1 (the entry must not be lost)", len(lines))
	}
	if req := lines[0]["input"].(map[string]any)["request"].(map[string]any); req["headers"] != nil {
		t.Errorf("headers = %v, want them erased", req["headers"])
	}
	assertNoSecrets(t, "console log", b.console.String())
}

func TestRemoteServiceReceivesGzippedEvents(t *testing.T) {
	b := newBed(t, config.DecisionLogs{URL: "remote", SampleRate: 1})
	var ids []string
	for range 3 {
		a, d := allow(t), deny(t)
		ids = append(ids, a.ID, d.ID)
		b.logger.Log(context.Background(), Entry{Decision: a})
		b.logger.Log(context.Background(), Entry{Decision: d})
	}
	b.logger.Log(context.Background(), Entry{Decision: &decision.Decision{ID: "e1", Status: 500,
		Reasons: []policy.Reason{{Code: decision.CodePolicyError}}}, Err: errors.New("evaluate: boom")})
	ids = append(ids, "e1")

	events, raw := b.flush(t)
	if len(events) != len(ids) {
		t.Fatalf("received %d events, want %d", len(events), len(ids))
	}
	got := map[string]map[string]any{}
	for _, e := range events {
		got[e["decision_id"].(string)] = e
	}
	for _, id := range ids {
		if got[id] == nil {
			t.Errorf("decision %s not uploaded", id)
		}
	}
	if e := got["e1"]; fmt.Sprint(e["error"]) != "map[code:policy_error message:evaluate: boom]" || e["result"] != nil {
		t.Errorf("error event = %v", e)
	}
	b.service.mu.Lock()
	for i := range b.service.encoding {
		if b.service.encoding[i] != "gzip" || b.service.auth[i] != "Bearer "+logCred || b.service.paths[i] != "/v1/logs?tenant=t1" {
			t.Errorf("upload %d: encoding %q, path %q, credential sent: %v", i, b.service.encoding[i], b.service.paths[i], b.service.auth[i] == "Bearer "+logCred)
		}
	}
	b.service.mu.Unlock()
	assertNoSecrets(t, "uploaded events", raw)
	assertNoSecrets(t, "process log", b.console.String())
	if s := b.logger.Status(); s.Written != uint64(len(ids)) || !s.Remote || s.Console || s.State != "OK" {
		t.Errorf("status = %+v", s)
	}
}

func TestDropAllows(t *testing.T) {
	b := newBed(t, config.DecisionLogs{URL: "remote", DropAllows: true, SampleRate: 1})
	d := deny(t)
	b.logger.Log(context.Background(), Entry{Decision: allow(t)})
	b.logger.Log(context.Background(), Entry{Decision: d})
	b.logger.Log(context.Background(), Entry{Decision: &decision.Decision{ID: "err", Allow: false, Status: 500}, Err: errors.New("x")})
	events, _ := b.flush(t)
	if len(events) != 2 {
		t.Fatalf("received %d events, want the deny and the error", len(events))
	}
	for _, e := range events {
		if e["decision_id"] != d.ID && e["decision_id"] != "err" {
			t.Errorf("an allow was logged: %v", e["decision_id"])
		}
	}
	if s := b.logger.Status(); s.Dropped != 1 || s.Written != 2 {
		t.Errorf("status = %+v", s)
	}
}

func TestSampling(t *testing.T) {
	t.Run("ok/rate 0 keeps denies and errors only", func(t *testing.T) {
		b := newBed(t, config.DecisionLogs{URL: "remote", SampleRate: 0})
		for range 20 {
			b.logger.Log(context.Background(), Entry{Decision: allow(t)})
		}
		b.logger.Log(context.Background(), Entry{Decision: deny(t)})
		b.logger.Log(context.Background(), Entry{Decision: &decision.Decision{ID: "err"}, Err: errors.New("x")})
		events, _ := b.flush(t)
		if len(events) != 2 {
			t.Fatalf("received %d events, want 2", len(events))
		}
		if s := b.logger.Status(); s.SampledOut != 20 {
			t.Errorf("sampled out = %d, want 20", s.SampledOut)
		}
	})
	t.Run("ok/rate one half keeps about half of the allows", func(t *testing.T) {
		b := newBed(t, config.DecisionLogs{URL: "remote", SampleRate: 0.5})
		const n = 400
		for range n {
			b.logger.Log(context.Background(), Entry{Decision: allow(t)})
		}
		for range 10 {
			b.logger.Log(context.Background(), Entry{Decision: deny(t)})
		}
		events, _ := b.flush(t)
		allows := len(events) - 10
		// Binomial(400, 0.5): 120..280 is more than 8 standard deviations.
		if allows < 120 || allows > 280 {
			t.Errorf("kept %d of %d allows at rate 0.5", allows, n)
		}
		if s := b.logger.Status(); s.SampledOut+s.Written != n+10 {
			t.Errorf("status = %+v", s)
		}
	})
}

func TestSampledIsDeterministic(t *testing.T) {
	half := threshold(0.5)
	kept := 0
	for i := range 1000 {
		id := fmt.Sprintf("%032x", i*7919)
		if sampled(id, half) != sampled(id, half) {
			t.Fatal("the same id was kept once and left out once")
		}
		if sampled(id, half) {
			kept++
		}
	}
	if kept < 400 || kept > 600 {
		t.Errorf("kept %d of 1000 at rate 0.5", kept)
	}
	if !sampled("x", threshold(1)) || sampled("x", threshold(0)) {
		t.Error("rate 1 must keep and rate 0 leave out every allow")
	}
}

func TestNoSinkIsNil(t *testing.T) {
	l, err := New(context.Background(), config.DecisionLogs{SampleRate: 1}, Options{})
	if err != nil || l != nil {
		t.Fatalf("New without sinks = %v, %v; want nil, nil", l, err)
	}
	// A nil Logger is usable and does nothing.
	l.Log(context.Background(), Entry{Decision: &decision.Decision{ID: "x"}})
	if err := l.Flush(context.Background()); err != nil {
		t.Error(err)
	}
	l.Stop(context.Background())
	if s := l.Status(); s != (Status{}) {
		t.Errorf("status = %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.DecisionLogs
		want string
	}{
		{"fail/credentials file missing", config.DecisionLogs{URL: "https://logs.example.com/logs", CredentialsFile: "/nonexistent/cred", SampleRate: 1}, "decision_logs.credentials_file"},
		{"fail/url with user info", config.DecisionLogs{URL: "https://u:p@logs.example.com/logs", SampleRate: 1}, "decision_logs.url"},
		{"fail/url not absolute", config.DecisionLogs{URL: "logs", SampleRate: 1}, "decision_logs.url"},
		{"fail/sample rate above 1", config.DecisionLogs{Console: true, SampleRate: 2}, "decision_logs.sample_rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(context.Background(), tt.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %s", err, tt.want)
			}
			if l != nil {
				t.Error("a logger came with the error")
			}
		})
	}
}

// TestMaskPolicy runs the mask policy's own Rego tests (mask_test.rego).
func TestMaskPolicy(t *testing.T) {
	results, err := tester.NewRunner().
		SetModules(parseModules(t, "mask.rego", "mask_test.rego")).
		SetStore(inmem.New()).
		RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range results {
		n++
		if !r.Pass() {
			t.Errorf("%s: %v", r.Name, r.Error)
		}
	}
	if n == 0 {
		t.Fatal("no Rego tests ran")
	}
}

func parseModules(t *testing.T, files ...string) map[string]*ast.Module {
	t.Helper()
	mods := map[string]*ast.Module{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(f, string(b), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[f] = m
	}
	return mods
}

func TestShadowDisagreementIsLoggedMaskedWithBothResults(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, DropAllows: true, SampleRate: 1})
	a := allow(t)
	a.Input = deny(t).Input // carries credentials the mask must erase
	shadow := &decision.ShadowAnswer{Allow: false, Status: 401, Revision: "candidate-2",
		Reasons: []policy.Reason{{Code: "lifetime_exceeded", Message: "the token's lifetime exceeds 2m0s"}}}
	b.logger.Log(context.Background(), Entry{Decision: a}) // dropped: an allow
	b.logger.Log(context.Background(), Entry{Decision: a, Shadow: shadow})
	if err := b.logger.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if lines := b.console.lines(t, "Decision Log"); len(lines) != 0 {
		t.Fatalf("%d decision lines, want none: the allow is dropped, the disagreement has its own message", len(lines))
	}
	lines := b.console.lines(t, ShadowMessage)
	if len(lines) != 1 {
		t.Fatalf("shadow lines = %d, want 1 whatever drop_allows says; log:\n%s", len(lines), b.console)
	}
	ev := lines[0]
	res, _ := ev["result"].(map[string]any)
	c, _ := ev["custom"].(map[string]any)
	sh, _ := c["shadow"].(map[string]any)
	if ev["decision_id"] != a.ID || res["allow"] != true || c["allow"] != true {
		t.Errorf("the answer given: decision_id %v, result %v, custom %v", ev["decision_id"], res, c)
	}
	if sh["allow"] != false || sh["status"] != float64(401) || sh["revision"] != "candidate-2" ||
		!strings.Contains(fmt.Sprint(sh["reasons"]), "lifetime_exceeded") {
		t.Errorf("custom.shadow = %v", sh)
	}
	if !strings.Contains(fmt.Sprint(ev["erased"]), "/input/request/headers/authorization") {
		t.Errorf("erased = %v, want the credentials masked", ev["erased"])
	}
	assertNoSecrets(t, "console log", b.console.String())
}

// TestEventRecordsTheStoreAnswers: the answers of pdp.revocation and
// pdp.last_seen go into nd_builtin_cache, keyed by the JSON of their
// arguments; other nondeterministic built-ins' answers do not.
func TestEventRecordsTheStoreAnswers(t *testing.T) {
	b := newBed(t, config.DecisionLogs{Console: true, SampleRate: 1})
	d := deny(t)
	d.Answers = topdown.NDBCache{}
	ref := ast.MustParseTerm(`{"iss": "https://as.example.com", "sub": "ali\"ce", "iat": 1700000000}`).Value
	d.Answers.Put("pdp.revocation", ast.NewArray(ast.NewTerm(ref)),
		ast.MustParseTerm(`{"revoked": true, "kind": "subject", "id": "r1", "at": 1700000001000000000, "reason": "x"}`).Value)
	d.Answers.Put("time.now_ns", ast.NewArray(), ast.Number("1"))
	a := allow(t)
	b.logger.Log(context.Background(), Entry{Decision: d})
	b.logger.Log(context.Background(), Entry{Decision: a})
	lines := b.consoleLines(t)
	if len(lines) != 2 {
		t.Fatalf("console decision lines = %d, want 2", len(lines))
	}
	got, ok := lines[0]["nd_builtin_cache"].(map[string]any)
	if !ok || len(got) != 1 {
		t.Fatalf("nd_builtin_cache = %v, want pdp.revocation alone", lines[0]["nd_builtin_cache"])
	}
	rev, _ := got["pdp.revocation"].(map[string]any)
	if len(rev) != 1 {
		t.Fatalf("pdp.revocation answers = %v", rev)
	}
	for k, v := range rev {
		var args []map[string]any
		if err := json.Unmarshal([]byte(k), &args); err != nil || len(args) != 1 || args[0]["sub"] != `ali"ce` {
			t.Errorf("key %q is not the JSON of the arguments: %v", k, err)
		}
		if m, _ := v.(map[string]any); m["revoked"] != true || m["kind"] != "subject" {
			t.Errorf("answer = %v", v)
		}
	}
	if _, ok := lines[1]["nd_builtin_cache"]; ok {
		t.Errorf("a decision that called no built-in records answers: %v", lines[1])
	}
}
