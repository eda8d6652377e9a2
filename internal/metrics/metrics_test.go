package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/ssf"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// scrape fetches /metrics from a real server and parses it.
func scrape(t *testing.T, m *Metrics) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	return fams, string(body)
}

// value returns the value of the sample of family name with exactly the
// given labels, and false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func want(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok || got != v {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
	}
}

func TestLabelAllowLists(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"ok/stable reason code", ReasonLabel("token_expired"), "token_expired"},
		{"ok/policy error", ReasonLabel(decision.CodePolicyError), "policy_error"},
		{"ok/refresh reuse", ReasonLabel("refresh_token_reused"), "refresh_token_reused"},
		{"fail/garbage reason", ReasonLabel("x-attacker-controlled-" + strings.Repeat("a", 100)), "other"},
		{"fail/empty reason", ReasonLabel(""), "other"},
		{"fail/reason in another case", ReasonLabel("TOKEN_EXPIRED"), "other"},
		{"ok/grant type", GrantTypeLabel("client_credentials"), "client_credentials"},
		{"ok/token exchange", GrantTypeLabel("token_exchange"), "token_exchange"},
		{"ok/no grant type", GrantTypeLabel(""), "none"},
		{"fail/deprecated grant", GrantTypeLabel("password"), "other"},
		{"fail/urn grant", GrantTypeLabel("urn:ietf:params:oauth:grant-type:jwt-bearer"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("label = %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestDecisionsAreCountedWithBoundedLabels(t *testing.T) {
	m := New(Options{})
	allow := &decision.Decision{Allow: true, Status: 200, GrantType: "authorization_code",
		Warnings: []policy.Reason{{Code: "token_replay_suspected"}}}
	deny := &decision.Decision{Status: 403, GrantType: "client_credentials",
		Reasons: []policy.Reason{{Code: "scope_insufficient"}, {Code: "ip_not_allowed"}}}
	garbage := &decision.Decision{Status: 401, GrantType: "sub:alice@example.com",
		Reasons: []policy.Reason{{Code: "eyJhbGciOiJub25lIn0.garbage."}}}
	failed := &decision.Decision{Status: 500, Reasons: []policy.Reason{{Code: decision.CodePolicyError}}}

	m.ObserveDecision(allow, nil, 2*time.Millisecond)
	m.ObserveDecision(allow, nil, time.Millisecond)
	m.ObserveDecision(deny, nil, time.Millisecond)
	m.ObserveDecision(garbage, nil, time.Millisecond)
	m.ObserveDecision(failed, errors.New("evaluate: boom"), time.Millisecond)
	m.ObserveRejected(http.StatusUnsupportedMediaType)
	m.ObserveEval(100*time.Microsecond, nil)
	m.ObserveEval(100*time.Microsecond, errors.New("boom"))

	fams, body := scrape(t, m)
	want(t, fams, "pdp_decisions_total", map[string]string{"allow": "true", "reason": "none", "grant_type": "authorization_code"}, 2)
	want(t, fams, "pdp_decisions_total", map[string]string{"allow": "false", "reason": "scope_insufficient", "grant_type": "client_credentials"}, 1)
	want(t, fams, "pdp_decisions_total", map[string]string{"allow": "false", "reason": "other", "grant_type": "other"}, 1)
	want(t, fams, "pdp_decisions_total", map[string]string{"allow": "false", "reason": "policy_error", "grant_type": "none"}, 1)
	want(t, fams, "pdp_decision_reasons_total", map[string]string{"reason": "ip_not_allowed", "grant_type": "client_credentials"}, 1)
	want(t, fams, "pdp_decision_warnings_total", map[string]string{"reason": "token_replay_suspected", "grant_type": "authorization_code"}, 2)
	want(t, fams, "pdp_decide_rejected_total", map[string]string{"status": "415"}, 1)
	want(t, fams, "pdp_decision_duration_seconds", map[string]string{}, 5)
	want(t, fams, "pdp_policy_evaluation_duration_seconds", map[string]string{}, 2)
	want(t, fams, "pdp_policy_evaluation_errors_total", map[string]string{}, 1)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# HELP") { // the runtime's help texts speak of the garbage collector
			continue
		}
		for _, s := range []string{"alice", "eyJ", "garbage"} {
			if strings.Contains(line, s) {
				t.Errorf("/metrics repeats %q: %s", s, line)
			}
		}
	}
	for name := range fams {
		// Besides tokenguard's own, the Go runtime's and the process's
		// standard collectors.
		if !strings.HasPrefix(name, "pdp_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s lacks the pdp_ prefix", name)
		}
	}
}

func TestPolicyObserver(t *testing.T) {
	m := New(Options{PolicySources: []string{"main"}})
	p := m.Policy()
	p.Activated("dir", "rev1")
	p.Activated("main", "rev2")
	p.Failed("main", errors.New("download: connection refused"))
	p.Failed("https://bundles.example.com/secret-path", errors.New("x"))
	p.Failed("dir", &policy.ConfigErrorsError{Source: "dir:rego", Errors: []policy.ConfigError{{Path: "pdp.realm", Message: "must be a string"}}})
	var _ policy.Observer = p

	fams, body := scrape(t, m)
	want(t, fams, "pdp_policy_activations_total", map[string]string{"source": "dir", "result": "activated"}, 1)
	want(t, fams, "pdp_policy_activations_total", map[string]string{"source": "main", "result": "activated"}, 1)
	want(t, fams, "pdp_policy_activations_total", map[string]string{"source": "dir", "result": "refused"}, 1)
	if _, ok := value(fams, "pdp_policy_activations_total", map[string]string{"source": "main", "result": "refused"}); ok {
		t.Error("a source that could not be read counts as a refused version")
	}
	want(t, fams, "pdp_policy_activation_failures_total", map[string]string{"source": "main"}, 1)
	want(t, fams, "pdp_policy_activation_failures_total", map[string]string{"source": "dir"}, 1)
	want(t, fams, "pdp_policy_activation_failures_total", map[string]string{"source": "other"}, 1)
	if strings.Contains(body, "secret-path") || strings.Contains(body, "rev1") {
		t.Error("/metrics repeats a URL or a revision")
	}
	if v, _ := value(fams, "pdp_policy_last_activation_timestamp_seconds", map[string]string{}); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last activation = %v", v)
	}
}

func TestSSFEvents(t *testing.T) {
	m := New(Options{})
	m.SETProcessed("session-revoked", ssf.OutcomeApplied)
	m.SETProcessed(ssf.EventNone, ssf.OutcomeRefused)
	m.SETProcessed("https://attacker.example/event", "pwned")
	fams, _ := scrape(t, m)
	want(t, fams, "pdp_ssf_events_total", map[string]string{"event": "session-revoked", "outcome": "applied"}, 1)
	want(t, fams, "pdp_ssf_events_total", map[string]string{"event": "none", "outcome": "refused"}, 1)
	want(t, fams, "pdp_ssf_events_total", map[string]string{"event": "other", "outcome": "other"}, 1)
}

func TestSSFPolls(t *testing.T) {
	m := New(Options{})
	m.SSFPolled(true)
	m.SSFPolled(false)
	m.SSFPolled(false)
	fams, _ := scrape(t, m)
	want(t, fams, "pdp_ssf_polls_total", map[string]string{"result": "ok"}, 1)
	want(t, fams, "pdp_ssf_polls_total", map[string]string{"result": "error"}, 2)
}

func TestRevokeRequests(t *testing.T) {
	m := New(Options{})
	m.RevokeRequest(httpapi.RevokeClientMismatch)
	m.RevokeRequest(httpapi.RevokeUnauthenticated)
	m.RevokeRequest("client-supplied value")
	fams, _ := scrape(t, m)
	want(t, fams, "pdp_revoke_requests_total", map[string]string{"outcome": "client_mismatch"}, 1)
	want(t, fams, "pdp_revoke_requests_total", map[string]string{"outcome": "unauthenticated"}, 1)
	want(t, fams, "pdp_revoke_requests_total", map[string]string{"outcome": "other"}, 1)
}

func TestStoreSizesAtScrapeTime(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m := New(Options{StoreStats: st.Stats, StoreStatsMaxAge: -1})

	fams, _ := scrape(t, m)
	want(t, fams, "pdp_store_up", map[string]string{}, 1)
	want(t, fams, "pdp_store_revocations", map[string]string{"kind": "jti"}, 0)

	now := time.Now()
	for _, r := range []store.Revocation{
		{Kind: store.KindJTI, Issuer: "https://as.example.com", Value: "j1", ExpiresAt: now.Add(time.Hour)},
		{Kind: store.KindJTI, Issuer: "https://as.example.com", Value: "j2", ExpiresAt: now.Add(time.Hour)},
		{Kind: store.KindSubject, Issuer: "https://as.example.com", Value: "alice", ExpiresAt: now.Add(time.Hour)},
	} {
		if _, err := st.PutRevocation(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RememberSET(context.Background(), "set-1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	fams, body := scrape(t, m)
	want(t, fams, "pdp_store_set_jtis", map[string]string{}, 1)
	want(t, fams, "pdp_store_revocations", map[string]string{"kind": "jti"}, 2)
	want(t, fams, "pdp_store_revocations", map[string]string{"kind": "subject"}, 1)
	if strings.Contains(body, "alice") {
		t.Error("/metrics repeats a revoked subject")
	}

	_ = st.Close()
	fams, _ = scrape(t, m)
	want(t, fams, "pdp_store_up", map[string]string{}, 0)
}

func TestStoreStatsAreReused(t *testing.T) {
	calls := 0
	m := New(Options{StoreStats: func(context.Context) (store.Stats, error) {
		calls++
		return store.Stats{Fingerprints: 7}, nil
	}})
	scrape(t, m)
	fams, _ := scrape(t, m)
	want(t, fams, "pdp_store_fingerprints", map[string]string{}, 7)
	if calls != 1 {
		t.Errorf("Stats called %d times for two scrapes within the max age, want 1", calls)
	}
}

// TestTokenVerifierReports drives a real verifier against a JWKS served
// over HTTP: the first token misses the cache and loads the keys, the same
// token again hits it.
func TestTokenVerifierReports(t *testing.T) {
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.JWKSHandler().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	if iss, err = devissuer.New(srv.URL, "ES256"); err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	v, err := token.NewVerifier(context.Background(), []config.Issuer{{
		Issuer: srv.URL, JWKSURI: srv.URL + "/jwks", Audiences: []string{"https://api.example.com"}, Algorithms: []string{"ES256"},
	}}, token.Options{Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Mint(map[string]any{"aud": "https://api.example.com", "sub": "alice", "client_id": "web-app"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	fams, body := scrape(t, m)
	want(t, fams, "pdp_token_cache_misses_total", map[string]string{}, 1)
	want(t, fams, "pdp_token_cache_hits_total", map[string]string{}, 1)
	want(t, fams, "pdp_jwks_refreshes_total", map[string]string{"trigger": "unknown_key"}, 1)
	if strings.Contains(body, tok) || strings.Contains(body, srv.URL) {
		t.Error("/metrics repeats the token or the issuer URL")
	}
	st := v.Status()
	if len(st) != 1 || !st[0].Loaded || st[0].Keys != 1 || st[0].Source != "jwks_uri" || st[0].LastError != "" {
		t.Errorf("issuer status = %+v", st)
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.ObserveDecision(&decision.Decision{}, nil, time.Millisecond)
	m.ObserveRejected(400)
	m.ObserveEval(time.Millisecond, nil)
	m.JWKSFetched(token.TriggerScheduled, nil)
	m.Introspected(token.IntrospectionActive)
	m.CacheLookup(true)
	m.SETProcessed("x", "y")
	m.SSFPolled(false)
	m.Policy().Activated("dir", "r")
	m.Policy().Failed("dir", errors.New("x"))
	m.ObserveShadow(decision.ShadowAgree)
	m.ObserveShadowDisagreement(true, false, "x")
	if m.Handler() != nil {
		t.Error("a nil Metrics serves a handler")
	}
}

// TestIntrospectionReports drives a real verifier against an RFC 7662
// endpoint: an active token (then cached), an inactive one and a failing
// endpoint.
func TestIntrospectionReports(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PostFormValue("token") {
		case "opaque-active-token":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"active":true,"sub":"alice","client_id":"web-app","aud":"https://api.example.com","exp":`+
				strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`,"iat":`+strconv.FormatInt(time.Now().Unix(), 10)+`}`)
		case "opaque-inactive-token":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"active":false}`)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	v, err := token.NewVerifier(context.Background(), []config.Issuer{{
		Issuer: "https://as.example.com", Audiences: []string{"https://api.example.com"},
		Introspection: &config.Introspection{Endpoint: srv.URL, ClientID: "pdp", ClientSecretFile: secret, CacheTTL: time.Minute, Timeout: time.Second},
	}}, token.Options{Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := v.Verify(ctx, "opaque-active-token"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(ctx, "opaque-inactive-token"); err == nil {
		t.Fatal("an inactive token verified")
	}
	if _, err := v.Verify(ctx, "opaque-failing-token"); err == nil {
		t.Fatal("a token verified while the endpoint was down")
	}
	fams, body := scrape(t, m)
	want(t, fams, "pdp_introspection_requests_total", map[string]string{"outcome": "active"}, 1)
	want(t, fams, "pdp_introspection_requests_total", map[string]string{"outcome": "inactive"}, 1)
	want(t, fams, "pdp_introspection_requests_total", map[string]string{"outcome": "error"}, 1)
	want(t, fams, "pdp_token_cache_hits_total", map[string]string{}, 1)
	want(t, fams, "pdp_token_cache_misses_total", map[string]string{}, 3)
	if strings.Contains(body, "opaque-") || strings.Contains(body, "s3cret") {
		t.Error("/metrics repeats a token or the client secret")
	}
}

func TestSightingsLostAreCounted(t *testing.T) {
	m := New(Options{Sightings: func() decision.SightingStats { return decision.SightingStats{Dropped: 7, Failed: 2} }})
	fams, _ := scrape(t, m)
	want(t, fams, "pdp_sightings_dropped_total", map[string]string{}, 7)
	want(t, fams, "pdp_sightings_failed_total", map[string]string{}, 2)
}

func TestShadowDecisions(t *testing.T) {
	m := New(Options{})
	fams, _ := scrape(t, m)
	for _, result := range []string{"agree", "disagree", "skipped", "error"} {
		want(t, fams, "pdp_shadow_decisions_total", map[string]string{"result": result}, 0)
	}
	m.ObserveShadow(decision.ShadowDisagree)
	m.ObserveShadow(decision.ShadowSkipped)
	m.ObserveShadow("made-up")
	m.ObserveShadowDisagreement(true, false, "lifetime_exceeded")
	m.ObserveShadowDisagreement(false, true, "a reason the policy made up")
	m.ObserveShadowDisagreement(false, false, "none")
	fams, _ = scrape(t, m)
	want(t, fams, "pdp_shadow_decisions_total", map[string]string{"result": "disagree"}, 1)
	want(t, fams, "pdp_shadow_decisions_total", map[string]string{"result": "skipped"}, 1)
	want(t, fams, "pdp_shadow_decisions_total", map[string]string{"result": "other"}, 1)
	want(t, fams, "pdp_shadow_disagreements_total", map[string]string{"active": "allow", "shadow": "deny", "reason": "lifetime_exceeded"}, 1)
	want(t, fams, "pdp_shadow_disagreements_total", map[string]string{"active": "deny", "shadow": "allow", "reason": "other"}, 1)
	want(t, fams, "pdp_shadow_disagreements_total", map[string]string{"active": "deny", "shadow": "deny", "reason": "none"}, 1)
}
