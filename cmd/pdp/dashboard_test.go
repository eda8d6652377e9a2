package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/ssf"
	"github.com/tokenguard/pdp/internal/store"
)

const (
	dashboardFile = "../../docs/grafana/tokenguard.json"
	alertsFile    = "../../docs/prometheus/alerts.yaml"
	operationsDoc = "../../docs/operations.md"
	runbookPrefix = "https://github.com/tokenguard/pdp/blob/main/docs/operations.md#"
)

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// metricCatalog is what a scrape serves: metric name → label → values.
type metricCatalog map[string]map[string]map[string]bool

func (c metricCatalog) add(name string, labels map[string]string) {
	if c[name] == nil {
		c[name] = map[string]map[string]bool{}
	}
	for l, v := range labels {
		if c[name][l] == nil {
			c[name][l] = map[string]bool{}
		}
		c[name][l][v] = true
	}
}

// catalogOf reads a scrape in the text format. A histogram is its _bucket
// (with le), _sum and _count series, a summary its quantiles, _sum and
// _count, as PromQL names them.
func catalogOf(t *testing.T, c metricCatalog, scrape []byte) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatalf("the scrape is not in the text format: %v", err)
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				c.add(name+"_sum", labels)
				c.add(name+"_count", labels)
				for _, b := range m.GetHistogram().GetBucket() {
					c.add(name+"_bucket", mergeLabels(labels, "le", fmt.Sprint(b.GetUpperBound())))
				}
				c.add(name+"_bucket", mergeLabels(labels, "le", "+Inf"))
			case dto.MetricType_SUMMARY:
				c.add(name+"_sum", labels)
				c.add(name+"_count", labels)
				c.add(name, mergeLabels(labels, "quantile", ""))
			default:
				c.add(name, labels)
			}
		}
	}
}

func mergeLabels(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for l, x := range labels {
		out[l] = x
	}
	return out
}

// TestDashboardAndAlertsNameOnlyServedMetrics scrapes a real server, driven
// through the states that make its metrics appear, and checks every
// expression of docs/grafana/tokenguard.json and docs/prometheus/alerts.yaml
// against what it serves: each metric, each label and each label value an
// expression names must exist (no dead panels, no alert that can never
// fire); the alert rules must be well formed with a runbook section each.
func TestDashboardAndAlertsNameOnlyServedMetrics(t *testing.T) {
	served := servedMetrics(t)
	checker := &promChecker{cat: served}

	t.Run("dashboard", func(t *testing.T) {
		used := checkDashboard(t, checker)
		for _, m := range []string{
			"pdp_decisions_total", "pdp_decision_reasons_total", "pdp_decision_warnings_total",
			"pdp_shadow_decisions_total", "pdp_shadow_disagreements_total",
			"pdp_decision_duration_seconds_bucket", "pdp_policy_evaluation_duration_seconds_bucket",
			"pdp_decision_cache_total", "pdp_token_cache_hits_total", "pdp_token_cache_entries", "pdp_decision_cache_entries",
			"pdp_store_revocations", "pdp_store_size_bytes", "pdp_ssf_events_total",
			"pdp_policy_last_activation_timestamp_seconds", "pdp_policy_activation_failures_total",
			"pdp_decision_logs_dropped_total",
		} {
			if !used[m] {
				t.Errorf("no panel shows %s", m)
			}
		}
		var unused []string
		for m := range served {
			if strings.HasPrefix(m, "pdp_") && !used[m] && !strings.HasSuffix(m, "_sum") && !strings.HasSuffix(m, "_count") {
				unused = append(unused, m)
			}
		}
		sort.Strings(unused)
		t.Logf("served metrics no panel shows: %v", unused)
	})
	t.Run("alerts", func(t *testing.T) {
		names := checkAlerts(t, checker)
		for _, a := range []string{
			"TokenguardPolicyActivationRefused", "TokenguardPolicyErrors", "TokenguardOverloaded",
			"TokenguardRevocationWritesFailing", "TokenguardSightingWritesFailing", "TokenguardStoreNotReady",
			"TokenguardJWKSRefreshFailing", "TokenguardSSFPollFailing", "TokenguardShadowDisagreements",
			"TokenguardDecisionLogDrops",
		} {
			if !names[a] {
				t.Errorf("alerts.yaml has no %s", a)
			}
		}
	})
}

// servedMetrics runs a real server and drives it until its /metrics shows
// decisions of every outcome, a monitor-mode warning, a refused request,
// an introspection, a refused revocation request, a Shared Signals event,
// polls that worked and failed, a JWKS fetch that failed, a refused policy
// version and the store's sizes. States a single bbolt-backed server does
// not reach in a test (an overloaded or policy_error answer, a Redis
// outage, the replication gauges of the Redis backend, a store that fails
// a write) come from the metrics package itself, configured as serve
// configures it for Redis and told of those events: their names and label
// values are the package's, not this test's.
func servedMetrics(t *testing.T) metricCatalog {
	t.Helper()
	dir := t.TempDir()
	// Three Shared Signals transmitters: one that pushes, one whose poll
	// endpoint answers, one whose poll endpoint fails.
	var transmitters []*devissuer.Issuer
	var jwksFiles []string
	for i := range 3 {
		tx, err := devissuer.New(fmt.Sprintf("https://tx%d.example", i), "ES256")
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, fmt.Sprintf("tx%d.json", i))
		if err := os.WriteFile(f, tx.JWKS(), 0o600); err != nil {
			t.Fatal(err)
		}
		transmitters, jwksFiles = append(transmitters, tx), append(jwksFiles, f)
	}
	pollOK := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sets":{},"moreAvailable":false}`)
	}))
	t.Cleanup(pollOK.Close)
	pollDown := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(pollDown.Close)
	// An issuer whose first JWKS fetch fails; the retry loads its keys.
	var flakyCalls atomic.Int64
	var flaky *devissuer.Issuer
	flakySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyCalls.Add(1) == 1 {
			http.Error(w, "try again", http.StatusBadGateway)
			return
		}
		flaky.JWKSHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(flakySrv.Close)
	var err error
	if flaky, err = devissuer.New(flakySrv.URL, "ES256"); err != nil {
		t.Fatal(err)
	}

	policyDir := policyWithData(t, guardrailData)
	tb := newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = policyDir
		c.Policy.Debounce = 20 * time.Millisecond
		var esIssuer string
		for _, is := range c.Issuers {
			if slices.Contains(is.Algorithms, "ES256") {
				esIssuer = is.Issuer
			}
		}
		c.Issuers = append(c.Issuers, config.Issuer{Issuer: flakySrv.URL, JWKSURI: flakySrv.URL + "/jwks",
			Audiences: []string{testAudience}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt"})
		c.SSF.Transmitters = []config.Transmitter{
			{Issuer: transmitters[0].URL(), JWKSFile: jwksFiles[0], Audience: "https://pdp.example/ssf", TokenIssuers: []string{esIssuer}},
			{Issuer: transmitters[1].URL(), JWKSFile: jwksFiles[1], Audience: "https://pdp.example/ssf", PollEndpoint: pollOK.URL, PollInterval: time.Hour},
			{Issuer: transmitters[2].URL(), JWKSFile: jwksFiles[2], Audience: "https://pdp.example/ssf", PollEndpoint: pollDown.URL, PollInterval: time.Hour},
		}
		withRevokeClients(t)(c)
	})
	now := time.Now()

	// Decisions: an allow (twice, the second may be reused), a deny, a
	// monitor-mode warning, an introspected opaque token.
	for range 2 {
		check(t, tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"jti": "dash-1"})), nil), want{true, 200, ""})
	}
	check(t, tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"exp": now.Add(2 * time.Hour).Unix()})), nil), want{false, 401, "lifetime_exceeded"})
	if d := tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"client_id": "monitored", "exp": now.Add(2 * time.Hour).Unix()})), nil); !hasWarning(d, "lifetime_exceeded") {
		t.Fatalf("no monitor-mode warning: %+v", d)
	}
	tb.decide(t, bearer("opaque-token-for-the-dashboard-test"), nil)
	// A request refused before any decision.
	if status, _ := tb.call(t, "POST", "/v1/decide", "application/json", `{"request":`, ""); status != http.StatusBadRequest {
		t.Fatalf("a truncated body = %d, want 400", status)
	}
	// A revocation request without client authentication.
	if status, _, _ := tb.revokeCall(t, url.Values{"token": {"x"}}, nil); status != http.StatusUnauthorized {
		t.Fatalf("an unauthenticated revocation = %d, want 401", status)
	}
	// A pushed Shared Signals event: a subject revocation in the store.
	header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "secevent+jwt", "kid": transmitters[0].KID()})
	payload, _ := json.Marshal(map[string]any{
		"iss": transmitters[0].URL(), "aud": "https://pdp.example/ssf", "iat": now.Unix(), "jti": "dash-set-1",
		"sub_id": map[string]any{"format": "iss_sub", "iss": tb.issuers["ES256"].URL(), "sub": "mallory"},
		"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
	})
	set, err := devissuer.SignCompact(transmitters[0].PrivateKey(), "ES256", header, payload)
	if err != nil {
		t.Fatal(err)
	}
	if status, out := tb.call(t, "POST", "/v1/ssf/events", "application/secevent+jwt", set, ""); status != http.StatusAccepted {
		t.Fatalf("push = %d %v", status, out)
	}
	// A policy version refused: the operator's typo in the watched data.
	broken := strings.Replace(guardrailData, `"max_lifetime": "1h"`, `"max_lifetime": "30 minutes"`, 1)
	if err := os.WriteFile(filepath.Join(policyDir, "data.json"), []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited policy directory is refused", func() bool {
		_, st := tb.call(t, "GET", "/v1/status", "", "", "")
		sources, _ := st["sources"].([]any)
		if len(sources) != 1 {
			return false
		}
		s, _ := sources[0].(map[string]any)
		return s["state"] == "failed"
	})

	cat := metricCatalog{}
	eventually(t, "/metrics shows both poll results and a failed JWKS fetch", func() bool {
		cat = metricCatalog{}
		catalogOf(t, cat, scrapeMetrics(t, tb.pdp.URL))
		polls := cat["pdp_ssf_polls_total"]["result"]
		return polls["ok"] && polls["error"] && cat["pdp_jwks_refresh_errors_total"] != nil
	})

	aux := metrics.New(metrics.Options{Replication: func() store.SharedStatus { return store.SharedStatus{} }})
	aux.ObserveDecision(&decision.Decision{Status: 503, Reasons: []policy.Reason{{Code: decision.CodeOverloaded}}}, nil, time.Millisecond)
	aux.ObserveDecision(&decision.Decision{Status: 503, Reasons: []policy.Reason{{Code: decision.CodeCanceled}}}, nil, time.Millisecond)
	aux.ObserveDecision(nil, errors.New("evaluation failed"), time.Millisecond)
	aux.StoreUnavailable(store.CheckRevocationWrite, false)
	aux.StoreUnavailable(store.CheckFingerprintWrite, true)
	aux.RevokeRequest(httpapi.RevokeStoreFailure)
	aux.SETProcessed(ssf.EventNone, ssf.OutcomeStoreFailure)
	// The shadow policy's disagreements, which the test bed's server,
	// without a shadow, never has.
	aux.ObserveShadowDisagreement(true, false, "lifetime_exceeded")
	aux.ObserveShadowDisagreement(false, true, "scope_insufficient")
	srv := httptest.NewServer(aux.Handler())
	defer srv.Close()
	catalogOf(t, cat, scrapeMetrics(t, srv.URL))

	return cat
}

func scrapeMetrics(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d %v", resp.StatusCode, err)
	}
	return body
}

// promChecker checks expressions against a catalog.
type promChecker struct{ cat metricCatalog }

// check parses expr and returns what it names (parsed) and every problem:
// a metric not served, a label the metric does not have, a value the label
// never takes, a grouping label none of its metrics has. Values that are
// dashboard variables ($job) are not checked; job and instance are target
// labels every series has.
func (c *promChecker) check(expr string) (promQuery, []error) {
	q, err := parsePromQL(expr)
	if err != nil {
		return q, []error{err}
	}
	var errs []error
	for _, r := range q.refs {
		labels, ok := c.cat[r.metric]
		if !ok {
			errs = append(errs, fmt.Errorf("metric %s is not served", r.metric))
			continue
		}
		for _, m := range r.matchers {
			if slices.Contains(targetLabels, m.label) {
				continue
			}
			values, ok := labels[m.label]
			if !ok {
				errs = append(errs, fmt.Errorf("%s has no label %s (it has %v)", r.metric, m.label, mapKeys(labels)))
				continue
			}
			if strings.Contains(m.value, "$") {
				continue
			}
			vals, err := matcherValues(m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, v := range vals {
				if !values[v] {
					errs = append(errs, fmt.Errorf("%s{%s} never takes the value %q (it takes %v)", r.metric, m.label, v, mapKeys(values)))
				}
			}
		}
	}
	have := c.labelsOf(q)
	for _, l := range q.grouping {
		if !have[l] {
			errs = append(errs, fmt.Errorf("label %s of a by/on/... list is on none of %v", l, q.refs))
		}
	}
	return q, errs
}

// labelsOf are the labels the series of q's metrics have.
func (c *promChecker) labelsOf(q promQuery) map[string]bool {
	have := map[string]bool{}
	for _, l := range targetLabels {
		have[l] = true
	}
	for _, r := range q.refs {
		for l := range c.cat[r.metric] {
			have[l] = true
		}
	}
	return have
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grafanaDashboard is the part of the dashboard model the test reads.
type grafanaDashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *grafanaDS               `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr         string     `json:"expr"`
		LegendFormat string     `json:"legendFormat"`
		Datasource   *grafanaDS `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // of a collapsed row
}

var (
	labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)
	legendLabel      = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
)

// checkDashboard checks the dashboard's model and every query in it; it
// returns the metrics its panels use.
func checkDashboard(t *testing.T, c *promChecker) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 39 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want a current schema (39 or later), a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query the datasource variable", v.Name)
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		parsed, errs := c.check(m[1])
		for _, err := range errs {
			t.Errorf("variable %s: %v", v.Name, err)
		}
		if len(errs) == 0 && !c.labelsOf(parsed)[m[2]] {
			t.Errorf("variable %s: %s has no label %s", v.Name, m[1], m[2])
		}
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("variables %v: want a datasource variable and job and instance query variables", vars)
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	panels := slices.Clone(d.Panels)
	for i := 0; i < len(panels); i++ {
		p := panels[i]
		panels = append(panels, p.Panels...)
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v is outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: no targets, or not on the datasource variable", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a target on datasource %q", p.Title, tg.Datasource.UID)
			}
			q, errs := c.check(tg.Expr)
			for _, err := range errs {
				t.Errorf("panel %q: %s: %v", p.Title, tg.Expr, err)
			}
			for _, r := range q.refs {
				used[r.metric] = true
				if !slices.ContainsFunc(r.matchers, func(m promMatcher) bool { return m.label == "job" && m.value == "$job" }) ||
					!slices.ContainsFunc(r.matchers, func(m promMatcher) bool { return m.label == "instance" && m.value == "$instance" }) {
					t.Errorf("panel %q: %s does not follow the job and instance variables", p.Title, r.metric)
				}
			}
			have := c.labelsOf(q)
			if len(q.grouping) > 0 {
				have = map[string]bool{}
				for _, l := range q.grouping {
					have[l] = true
				}
			}
			for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !have[m[1]] {
					t.Errorf("panel %q: legend {{%s}} is not a label of %s", p.Title, m[1], tg.Expr)
				}
			}
		}
	}
	return used
}

// promRules is the Prometheus rule file format (rule groups).
type promRules struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var templateLabel = regexp.MustCompile(`\$labels\.([A-Za-z_][A-Za-z0-9_]*)`)

// checkAlerts reads the rule file strictly, checks every rule and returns
// the alert names.
func checkAlerts(t *testing.T, c *promChecker) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules promRules
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	anchors := markdownAnchors(t, operationsDoc)
	names := map[string]bool{}
	groups := map[string]bool{}
	if len(rules.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range rules.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q is empty or used twice", g.Name)
		}
		groups[g.Name] = true
		if g.Interval != "" {
			if _, err := model.ParseDuration(g.Interval); err != nil {
				t.Errorf("group %s: interval: %v", g.Name, err)
			}
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Record != "" {
				t.Errorf("group %s: a rule that is not an alert: %+v", g.Name, r)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			names[r.Alert] = true
			if d, err := model.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("alert %s: for %q is not a positive duration (%v)", r.Alert, r.For, err)
			}
			if r.KeepFiringFor != "" {
				if _, err := model.ParseDuration(r.KeepFiringFor); err != nil {
					t.Errorf("alert %s: keep_firing_for: %v", r.Alert, err)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			if anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookPrefix); !ok || !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q is not a section of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
			}
			q, errs := c.check(r.Expr)
			for _, err := range errs {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
			grouped := map[string]bool{}
			for _, l := range q.grouping {
				grouped[l] = true
			}
			for _, text := range r.Annotations {
				for _, m := range templateLabel.FindAllStringSubmatch(text, -1) {
					if !grouped[m[1]] {
						t.Errorf("alert %s: an annotation names $labels.%s, which its expression does not keep (it keeps %v)", r.Alert, m[1], q.grouping)
					}
				}
			}
		}
	}
	return names
}

// markdownAnchors are the anchors GitHub gives the headings of a page.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := map[string]bool{}
	sc := bufio.NewScanner(f)
	fence := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}
