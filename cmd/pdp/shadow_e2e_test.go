package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
)

// eventSink is a remote decision-log service that keeps the events.
type eventSink struct {
	mu     sync.Mutex
	events []map[string]any
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var batch []map[string]any
	if err := json.NewDecoder(zr).Decode(&batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.events = append(s.events, batch...)
	s.mu.Unlock()
}

// readShadowStatus reads /v1/status's shadow part.
func readShadowStatus(t *testing.T, tb *testbed) *decision.ShadowStatus {
	t.Helper()
	resp, err := http.Get(tb.pdp.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Shadow *decision.ShadowStatus `json:"shadow"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Shadow
}

// waitShadow polls /v1/status until the shadow has compared n decisions,
// or failed n times (errors: its last_error is set).
func waitShadow(t *testing.T, tb *testbed, done func(*decision.ShadowStatus) bool) *decision.ShadowStatus {
	t.Helper()
	for range 500 {
		if st := readShadowStatus(t, tb); st != nil && done(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the shadow never got there: %+v", readShadowStatus(t, tb))
	return nil
}

func metricsText(t *testing.T, tb *testbed) string {
	t.Helper()
	resp, err := http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// TestShadowPolicyOnLiveTraffic runs a real server with the guardrail
// policy active and, as its shadow, the same policy with a tighter
// default lifetime: every 30-minute token is allowed as before, and each
// decision is a disagreement counted in /metrics and /v1/status and
// decision-logged with both results.
func TestShadowPolicyOnLiveTraffic(t *testing.T) {
	tighter := strings.Replace(guardrailData, `"default": {"max_lifetime": "1h"`, `"default": {"max_lifetime": "10m"`, 1)
	if tighter == guardrailData {
		t.Fatal("the guardrail data no longer has the default lifetime this test tightens")
	}
	shadowDir := policyWithData(t, tighter)
	sink := &eventSink{}
	logs := httptest.NewServer(sink)
	t.Cleanup(logs.Close)
	tb := newGuardrailTestbed(t, func(c *config.Config) {
		c.Policy.Shadow.Dir = shadowDir
		c.DecisionLogs.URL = logs.URL
		c.DecisionLogs.DropAllows = true // disagreements are written all the same
		c.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	})
	const n = 3 // by /v1/decide, and one by /v1/forward-auth
	ids := map[string]bool{}
	for range n {
		tok := tb.mint(t, "ES256", lifetime30m())
		d := tb.decide(t, bearer(tok), nil)
		check(t, d, want{true, 200, ""})
		ids[d.ID] = true
		// One at a time: with max_concurrency 1 a second decision could
		// find the slot busy and be skipped.
		waitShadow(t, tb, func(st *decision.ShadowStatus) bool { return st.Decisions == int64(len(ids)) })
	}
	// The forward-auth transport hands its decisions over as well.
	req, _ := http.NewRequest("GET", tb.pdp.URL+"/v1/forward-auth", nil)
	for k, v := range map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/v1/accounts/42", "X-Original-Proto": "https",
		"X-Real-Ip": "203.0.113.7", "Authorization": "Bearer " + tb.mint(t, "ES256", lifetime30m())} {
		req.Header.Set(k, v)
	}
	req.Host = "api.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/forward-auth = %d, want the active policy's allow", resp.StatusCode)
	}
	ids[resp.Header.Get("X-Decision-Id")] = true
	waitShadow(t, tb, func(st *decision.ShadowStatus) bool { return st.Decisions == n+1 })
	st := readShadowStatus(t, tb)
	if st.Decisions != n+1 || st.Disagreements != n+1 || st.Source != shadowDir || st.Revision == "" || st.LastError != "" {
		t.Fatalf("/v1/status shadow = %+v", st)
	}
	checkDocGolden(t, shadowStatusGolden, []byte(toJSON(map[string]any{"shadow": st})), shadowDir, "./rego-next")
	text := metricsText(t, tb)
	for _, want := range []string{
		`pdp_shadow_decisions_total{result="disagree"} 4`,
		`pdp_shadow_decisions_total{result="skipped"} 0`,
		`pdp_shadow_decisions_total{result="agree"} 0`,
		`pdp_shadow_disagreements_total{active="allow",reason="lifetime_exceeded",shadow="deny"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// No answer changed: the same token is still allowed, and nothing the
	// shadow would have done was written.
	stats, err := tb.app.store.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for kind, count := range stats.Revocations {
		if count != 0 {
			t.Errorf("%d %s revocations written", count, kind)
		}
	}
	if err := tb.app.decisionLog.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.events) != n+1 {
		t.Fatalf("%d decision-log events, want the %d disagreements alone (allows are dropped)", len(sink.events), n+1)
	}
	for _, ev := range sink.events {
		res, _ := ev["result"].(map[string]any)
		custom, _ := ev["custom"].(map[string]any)
		sh, _ := custom["shadow"].(map[string]any)
		id, _ := ev["decision_id"].(string)
		if !ids[id] || res["allow"] != true || sh["allow"] != false || !strings.Contains(toJSON(sh["reasons"]), "lifetime_exceeded") {
			t.Errorf("event %s: result %v, shadow %v", id, res, sh)
		}
		if strings.Contains(toJSON(ev), "Bearer ") {
			t.Errorf("event %s carries the credential", id)
		}
	}
	// What the docs show of one: the answer given and the shadow's.
	ev := sink.events[0]
	custom, _ := ev["custom"].(map[string]any)
	checkDocGolden(t, shadowEventGolden, []byte(toJSON(map[string]any{
		"decision_id": ev["decision_id"],
		"result":      map[string]any{"allow": custom["allow"], "status": custom["status"]},
		"custom":      map[string]any{"allow": custom["allow"], "reasons": custom["reasons"], "shadow": custom["shadow"]},
	})))
}

// lifetime30m are the claims of a token issued now for 30 minutes (iat
// given, so that the lifetime the docs quote is exact).
func lifetime30m() map[string]any {
	now := time.Now()
	return map[string]any{"iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix()}
}

var (
	shadowStatusGolden = docGolden("shadow-status.json", "TestShadowPolicyOnLiveTraffic")
	shadowEventGolden  = docGolden("shadow-disagreement.json", "TestShadowPolicyOnLiveTraffic")
)

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestShadowThatFailsLeavesReadinessAlone: a shadow policy that does not
// compile keeps nothing from serving; it shows in /v1/status and /metrics.
func TestShadowThatFailsLeavesReadinessAlone(t *testing.T) {
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "main.rego"), []byte("package tokenguard.main\n\ndecision := {"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := newTestbed(t, func(c *config.Config) { c.Policy.Shadow.Dir = broken }) // waits for /readyz
	d := tb.decide(t, bearer(tb.mint(t, "ES256", nil)), nil)
	check(t, d, want{true, 200, ""})
	st := waitShadow(t, tb, func(st *decision.ShadowStatus) bool { return st.LastError != "" })
	if st.Revision != "" || st.Decisions != 0 || !strings.Contains(st.LastError, "main.rego") {
		t.Fatalf("/v1/status shadow = %+v", st)
	}
	for range 500 {
		if strings.Contains(metricsText(t, tb), `pdp_shadow_decisions_total{result="error"} 1`) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(`/metrics never counted the shadow's error`)
}

// TestNoShadowNoStatus: without policy.shadow, /v1/status has no shadow.
func TestNoShadowNoStatus(t *testing.T) {
	tb := newTestbed(t, nil)
	resp, err := http.Get(tb.pdp.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if bytes.Contains(raw, []byte(`"shadow"`)) || !bytes.Contains(raw, []byte(`"decision_logs"`)) {
		t.Fatalf("/v1/status = %s, want no shadow", raw)
	}
}

// TestRefusedShadowVersionKeepsTheLastGood: the shadow source is watched;
// a version that does not load is refused, shows in last_error, and the
// last good shadow version keeps being evaluated.
func TestRefusedShadowVersionKeepsTheLastGood(t *testing.T) {
	tighter := strings.Replace(guardrailData, `"default": {"max_lifetime": "1h"`, `"default": {"max_lifetime": "10m"`, 1)
	shadowDir := policyWithData(t, tighter)
	tb := newGuardrailTestbed(t, func(c *config.Config) { c.Policy.Shadow.Dir = shadowDir })
	decideOnce := func(n int64) *decision.ShadowStatus {
		tok := tb.mint(t, "ES256", lifetime30m())
		check(t, tb.decide(t, bearer(tok), nil), want{true, 200, ""})
		return waitShadow(t, tb, func(st *decision.ShadowStatus) bool { return st.Decisions == n })
	}
	first := decideOnce(1)
	if err := os.WriteFile(filepath.Join(shadowDir, "data.json"), []byte(`{"pdp": `), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := waitShadow(t, tb, func(st *decision.ShadowStatus) bool { return st.LastError != "" })
	if refused.Revision != first.Revision {
		t.Fatalf("revision %q after the refusal, want the last good %q", refused.Revision, first.Revision)
	}
	if st := decideOnce(2); st.Disagreements != 2 || st.Revision != first.Revision {
		t.Fatalf("/v1/status shadow = %+v, want the last good version still disagreeing", st)
	}
}
