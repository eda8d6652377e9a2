package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

const (
	audience   = "https://api.example.com"
	accountURL = "https://api.example.com/v1/accounts/42"
	adminCred  = "admin-credential-5b1e9c0d77"
	logCred    = "log-service-credential-0a9f2"
	apiKey     = "api-key-in-a-header-c3d4e5"
)

// lockedBuffer is a log destination shared by the handler and the
// decision-log plugin's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// logService is a remote decision-log service.
type logService struct {
	mu     sync.Mutex
	raw    []string
	events []map[string]any
	bad    []string
}

func (s *logService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Authorization") != "Bearer "+logCred {
		s.bad = append(s.bad, "upload without gzip or credential")
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		s.bad = append(s.bad, "not gzip")
		http.Error(w, "not gzip", http.StatusBadRequest)
		return
	}
	plain, _ := io.ReadAll(zr)
	var batch []map[string]any
	if err := json.Unmarshal(plain, &batch); err != nil {
		s.bad = append(s.bad, "not a JSON array")
	}
	s.raw = append(s.raw, string(plain))
	s.events = append(s.events, batch...)
	w.WriteHeader(http.StatusOK)
}

// pdp is the real pipeline behind a real server: bbolt, the shipped
// policy, the token verifier against a JWKS over HTTP, DPoP proofs, the
// decision-log plugin (console and remote) and metrics.
type pdp struct {
	srv     *httptest.Server
	issuer  *devissuer.Issuer
	logs    *decisionlog.Logger
	procLog *lockedBuffer
	service *logService
}

func newPDP(t *testing.T) *pdp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &pdp{procLog: &lockedBuffer{}, service: &logService{}}
	logger := slog.New(slog.NewJSONHandler(p.procLog, &slog.HandlerOptions{Level: slog.LevelDebug}))

	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	builtins.SetStore(st)
	t.Cleanup(func() { builtins.SetStore(nil) })

	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.issuer.JWKSHandler().ServeHTTP(w, r) }))
	t.Cleanup(jwks.Close)
	if p.issuer, err = devissuer.New(jwks.URL, "ES256"); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{StoreStats: st.Stats})
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: jwks.URL, JWKSURI: jwks.URL + "/jwks", Audiences: []string{audience}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{Logger: logger, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(logger)
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	proofs, err := dpop.NewVerifier(st, dpop.Options{Algorithms: []string{"ES256"}, IATWindow: time.Minute, IATLeeway: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	decider := decision.NewEngine(ctx, verifier, engine, decision.Options{
		Environment: "prod", Timeout: 5 * time.Second, Proofs: proofs, State: st, Logger: logger, Observer: m,
	})

	logSrv := httptest.NewServer(p.service)
	t.Cleanup(logSrv.Close)
	credFile := filepath.Join(t.TempDir(), "log-credential")
	if err := os.WriteFile(credFile, []byte(logCred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.logs, err = decisionlog.New(ctx, config.DecisionLogs{Console: true, URL: logSrv.URL + "/logs", CredentialsFile: credFile, SampleRate: 1},
		decisionlog.Options{Logger: logger, Console: p.procLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		p.logs.Stop(sctx)
	})

	p.srv = httptest.NewServer(httpapi.New(httpapi.Options{
		Decider:        decider,
		Logger:         logger,
		Admin:          httpapi.Admin{Credential: adminCred, Store: st, RevocationTTL: time.Hour},
		DecisionLog:    p.logs,
		Metrics:        m,
		MetricsHandler: m.Handler(),
		Status: func() any {
			info, _ := engine.Active()
			return info
		},
		StatusParts: []httpapi.StatusPart{
			{Name: "store", Get: func(ctx context.Context) (any, error) { return st.Stats(ctx) }},
			{Name: "issuers", Get: func(context.Context) (any, error) { return verifier.Status(), nil }},
			{Name: "decision_logs", Get: func(context.Context) (any, error) { return p.logs.Status(), nil }},
		},
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pdp) mint(t *testing.T, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"aud": audience, "sub": "alice", "client_id": "web-app", "scope": "accounts:read"}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := p.issuer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type answer struct {
	ID      string `json:"decision_id"`
	Allow   bool   `json:"allow"`
	Reasons []struct {
		Code string `json:"code"`
	} `json:"reasons"`
	Policy struct {
		Revision string `json:"revision"`
	} `json:"policy"`
}

func (p *pdp) decide(t *testing.T, url string, headers map[string]any) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"request": map[string]any{"method": "GET", "url": url, "headers": headers}})
	resp, err := http.Post(p.srv.URL+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/decide: %d %s", resp.StatusCode, raw)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func (p *pdp) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// TestObservabilityNeverRevealsCredentials makes real decisions with a
// bearer token, a DPoP-bound token and its proof, credentials in a header
// and in the query, and uses the admin API with its credential; then no
// log line, no uploaded decision-log event, no /metrics or /v1/status
// output may contain any of them, while every decision is logged with its
// token hash.
func TestObservabilityNeverRevealsCredentials(t *testing.T) {
	p := newPDP(t)
	bearer := p.mint(t, map[string]any{"jti": "bearer-1"})
	prover, err := dpoptest.NewProver("ES256")
	if err != nil {
		t.Fatal(err)
	}
	bound := p.mint(t, map[string]any{"jti": "bound-1", "cnf": map[string]any{"jkt": prover.JKT()}})
	proof, err := prover.Proof("GET", accountURL, bound)
	if err != nil {
		t.Fatal(err)
	}
	expired := p.mint(t, map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
	revoked := p.mint(t, map[string]any{"jti": "revoke-me"})
	secrets := map[string]string{
		"bearer token": bearer, "DPoP-bound token": bound, "DPoP proof": proof, "expired token": expired,
		"revoked token": revoked, "admin credential": adminCred, "log service credential": logCred, "API key": apiKey,
	}
	tokens := map[string]string{} // decision id → the token it presented

	a := p.decide(t, accountURL, map[string]any{"authorization": "Bearer " + bearer, "user-agent": "curl/8"})
	if !a.Allow {
		t.Fatalf("bearer token denied: %+v", a.Reasons)
	}
	tokens[a.ID] = bearer
	a = p.decide(t, accountURL, map[string]any{"authorization": "DPoP " + bound, "dpop": proof})
	if !a.Allow {
		t.Fatalf("DPoP-bound token denied: %+v", a.Reasons)
	}
	tokens[a.ID] = bound
	a = p.decide(t, accountURL, map[string]any{"authorization": "Bearer " + expired})
	if a.Allow || a.Reasons[0].Code != "token_expired" {
		t.Fatalf("expired token: %+v", a)
	}
	tokens[a.ID] = expired
	a = p.decide(t, accountURL+"?access_token="+bearer, map[string]any{"authorization": "Bearer " + bearer, "x-api-key": apiKey})
	tokens[a.ID] = bearer
	queryID := a.ID

	// The admin API revokes a token; its next decision is a deny.
	req, _ := http.NewRequest(http.MethodPost, p.srv.URL+"/v1/admin/revocations",
		strings.NewReader(`{"kind":"jti","iss":"`+p.issuer.URL()+`","value":"revoke-me","reason":"test"}`))
	req.Header.Set("Authorization", "Bearer "+adminCred)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("admin revocation: %d", resp.StatusCode)
	}
	a = p.decide(t, accountURL, map[string]any{"authorization": "Bearer " + revoked})
	if a.Allow || a.Reasons[0].Code != "token_revoked" {
		t.Fatalf("revoked token: %+v", a)
	}
	tokens[a.ID] = revoked

	// Decisions are logged after their answer is written: flush until the
	// service has every one of them (or the deadline passes and the
	// checks below say which is missing).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if err := p.logs.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.service.mu.Lock()
		got := map[string]bool{}
		for _, e := range p.service.events {
			got[e["decision_id"].(string)] = true
		}
		p.service.mu.Unlock()
		missing := false
		for id := range tokens {
			missing = missing || !got[id]
		}
		if !missing || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	metricsOut := p.get(t, "/metrics")
	statusOut := p.get(t, "/v1/status")

	p.service.mu.Lock()
	uploaded := strings.Join(p.service.raw, "\n")
	events := p.service.events
	bad := p.service.bad
	p.service.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("log service: %v", bad)
	}
	for what, secret := range secrets {
		for where, out := range map[string]string{"the process log": p.procLog.String(), "an uploaded event": uploaded, "/metrics": metricsOut, "/v1/status": statusOut} {
			if strings.Contains(out, secret) {
				t.Errorf("%s contains the %s", where, what)
			}
		}
	}

	// Every decision is in the uploads and on the console, with the
	// token's SHA-256 in place of the token.
	byID := map[string]map[string]any{}
	for _, e := range events {
		byID[e["decision_id"].(string)] = e
	}
	console := map[string]bool{}
	for _, line := range strings.Split(p.procLog.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "Decision Log" {
			console[rec["decision_id"].(string)] = true
		}
	}
	for id, tok := range tokens {
		e := byID[id]
		if e == nil || !console[id] {
			t.Errorf("decision %s: uploaded %v, on the console %v", id, e != nil, console[id])
			continue
		}
		c, _ := e["custom"].(map[string]any)
		if c["token_sha256"] != token.HashToken(tok) {
			t.Errorf("decision %s: token_sha256 = %v", id, c["token_sha256"])
		}
		if n, _ := c["latency_ns"].(float64); n <= 0 {
			t.Errorf("decision %s: latency_ns = %v", id, c["latency_ns"])
		}
		if rev, _ := e["bundles"].(map[string]any)["policy"].(map[string]any); rev == nil || rev["revision"] == "" {
			t.Errorf("decision %s: no policy revision: %v", id, e["bundles"])
		}
	}
	if e := byID[queryID]; e != nil {
		erased, _ := json.Marshal(e["erased"])
		for _, path := range []string{"/input/request/headers/x-api-key", "/input/request/query", "/input/request/url"} {
			if !strings.Contains(string(erased), path) {
				t.Errorf("erased = %s, want %s", erased, path)
			}
		}
	}
}

// TestMetricsAfterRealDecisions scrapes /metrics from the real server after
// real decisions: the counters move and every label value is bounded.
func TestMetricsAfterRealDecisions(t *testing.T) {
	p := newPDP(t)
	tok := p.mint(t, nil)
	for range 3 {
		if a := p.decide(t, accountURL, map[string]any{"authorization": "Bearer " + tok}); !a.Allow {
			t.Fatalf("denied: %+v", a.Reasons)
		}
	}
	p.decide(t, accountURL, map[string]any{})
	p.decide(t, "https://api.example.com/v1/unknown", map[string]any{"authorization": "Bearer " + tok})
	resp, err := http.Post(p.srv.URL+"/v1/decide", "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	out := p.get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	sample := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in /metrics", name)
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v in /metrics", name, labels)
		return 0
	}
	if v := sample("pdp_decisions_total", map[string]string{"allow": "true", "reason": "none", "grant_type": "authorization_code"}); v != 3 {
		t.Errorf("allows = %v, want 3", v)
	}
	if v := sample("pdp_decisions_total", map[string]string{"allow": "false", "reason": "token_missing", "grant_type": "none"}); v != 1 {
		t.Errorf("token_missing denies = %v, want 1", v)
	}
	if v := sample("pdp_decisions_total", map[string]string{"allow": "false", "reason": "route_unknown"}); v != 1 {
		t.Errorf("route_unknown denies = %v, want 1", v)
	}
	if v := sample("pdp_decide_rejected_total", map[string]string{"status": "415"}); v != 1 {
		t.Errorf("rejected = %v, want 1", v)
	}
	if v := sample("pdp_decision_duration_seconds", nil); v != 5 {
		t.Errorf("decision latency samples = %v, want 5", v)
	}
	if v := sample("pdp_policy_evaluation_duration_seconds", nil); v != 5 {
		t.Errorf("evaluation latency samples = %v, want 5", v)
	}
	if hits, misses := sample("pdp_token_cache_hits_total", nil), sample("pdp_token_cache_misses_total", nil); hits != 3 || misses != 1 {
		t.Errorf("cache hits/misses = %v/%v, want 3/1", hits, misses)
	}
	if v := sample("pdp_jwks_refreshes_total", map[string]string{"trigger": "unknown_key"}); v != 1 {
		t.Errorf("JWKS refreshes = %v, want 1", v)
	}
	if v := sample("pdp_store_up", nil); v != 1 {
		t.Errorf("store up = %v", v)
	}
	allowed := map[string]map[string]bool{
		"reason":     {"none": true, "other": true},
		"grant_type": {"none": true, "other": true, "authorization_code": true, "client_credentials": true, "refresh_token": true, "device_code": true, "token_exchange": true},
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "reason" && metrics.ReasonLabel(l.GetValue()) != l.GetValue() && !allowed["reason"][l.GetValue()] {
					t.Errorf("%s: reason label %q is not on the allow-list", name, l.GetValue())
				}
				if l.GetName() == "grant_type" && !allowed["grant_type"][l.GetValue()] {
					t.Errorf("%s: grant_type label %q is not on the allow-list", name, l.GetValue())
				}
			}
		}
	}
	if strings.Contains(out, tok) || strings.Contains(out, "alice") || strings.Contains(out, "web-app") || strings.Contains(out, "api.example.com") {
		t.Error("/metrics repeats a token, subject, client or URL")
	}
}

func TestStatus(t *testing.T) {
	p := newPDP(t)
	p.decide(t, accountURL, map[string]any{"authorization": "Bearer " + p.mint(t, nil)})
	var st struct {
		Revision     string           `json:"revision"`
		Store        map[string]any   `json:"store"`
		Issuers      []map[string]any `json:"issuers"`
		DecisionLogs map[string]any   `json:"decision_logs"`
	}
	// The handler logs the decision after the answer is sent, and the
	// logger's goroutine writes it: flush until it has been handed over
	// (bounded), then read the status.
	for try := 0; ; try++ {
		if err := p.logs.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(p.get(t, "/v1/status")), &st); err != nil {
			t.Fatal(err)
		}
		if st.DecisionLogs["written"] == float64(1) || try == 500 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Revision == "" || st.Store["revocations"] == nil || len(st.Issuers) != 1 || st.Issuers[0]["loaded"] != true ||
		st.DecisionLogs["written"] != float64(1) || st.DecisionLogs["console"] != true {
		t.Errorf("status = %+v", st)
	}
}
