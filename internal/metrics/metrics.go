// Package metrics is tokenguard's Prometheus instrumentation: one registry
// of its own, every metric named pdp_*, and label values taken only from
// fixed allow-lists (reason codes, grant types, event names, outcomes), so
// that no subject, client, token or URL ever becomes a label. Metrics
// implements the small observer interfaces of the decision pipeline, the
// token verifier and the Shared Signals receiver; PolicyObserver is the
// policy loader's.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/ssf"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// Options configure Metrics.
type Options struct {
	// StoreStats, when set, is called at scrape time for the store sizes
	// (pdp_store_*). Results are reused for StoreStatsMaxAge.
	StoreStats func(ctx context.Context) (store.Stats, error)
	// StoreStatsMaxAge is how long one StoreStats answer serves scrapes
	// (counting walks the whole file). Default 10s; negative: never reuse.
	StoreStatsMaxAge time.Duration
	// PolicySources are the policy source names that may be label values
	// (the configured bundle names); "dir" always may, anything else is
	// "other".
	PolicySources []string
	// Replication, when set (store backend redis), is called at scrape
	// time for pdp_store_replication_*.
	Replication func() store.SharedStatus
	// DecisionCache, when set, is called at scrape time for
	// pdp_decision_cache_total: the reusable decisions answered from a kept
	// one (hits) and evaluated (misses).
	DecisionCache func() (hits, misses int64)
	// Sightings, when set, is called at scrape time for
	// pdp_sightings_dropped_total and pdp_sightings_failed_total.
	Sightings func() decision.SightingStats
	// CacheSizes, when set, is called at scrape time for the entries and
	// estimated heap bytes of the verified-token cache and of the kept
	// decisions, and their byte bounds (pdp_token_cache_*,
	// pdp_decision_cache_*).
	CacheSizes func() CacheSizes
}

// CacheSizes are what the token and decision caches hold, and their byte
// bounds.
type CacheSizes struct {
	TokenEntries, TokenBytes, TokenMaxBytes          int64
	DecisionEntries, DecisionBytes, DecisionMaxBytes int64
}

// Metrics holds every tokenguard metric in its own registry. It is safe for
// concurrent use. A nil *Metrics records nothing (metrics disabled), so it
// can be handed to every observer slot as is.
type Metrics struct {
	reg     *prometheus.Registry
	sources map[string]bool

	decisions         *prometheus.CounterVec
	reasons           *prometheus.CounterVec
	warnings          *prometheus.CounterVec
	rejected          *prometheus.CounterVec
	decisionDuration  prometheus.Histogram
	evalDuration      prometheus.Histogram
	evalErrors        prometheus.Counter
	policyActivations *prometheus.CounterVec
	policyFailures    *prometheus.CounterVec
	policyActivatedAt prometheus.Gauge
	jwksRefreshes     *prometheus.CounterVec
	jwksErrors        *prometheus.CounterVec
	introspections    *prometheus.CounterVec
	cacheHits         prometheus.Counter
	cacheMisses       prometheus.Counter
	setEvents         *prometheus.CounterVec
	ssfPolls          *prometheus.CounterVec
	revokeRequests    *prometheus.CounterVec
	storeUnavailable  *prometheus.CounterVec
	shadowDecisions   *prometheus.CounterVec
	shadowDisagreed   *prometheus.CounterVec
}

// latencyBuckets span a cached decision (tens of µs) to the longest
// decision timeout worth having (1s).
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// New creates the metrics and registers them in a new registry.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		sources: set(append([]string{"dir"}, opts.PolicySources...)...),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_decisions_total",
			Help: "Decisions made, by outcome, primary reason code (none on allow) and grant type.",
		}, []string{"allow", "reason", "grant_type"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_decision_reasons_total",
			Help: "Reasons given by denies (every reason of a decision counts), by reason code and grant type.",
		}, []string{"reason", "grant_type"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_decision_warnings_total",
			Help: "Warnings of guardrails in monitor mode, by reason code and grant type.",
		}, []string{"reason", "grant_type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_decide_rejected_total",
			Help: "Decision requests refused before any decision (malformed, too large, wrong media type), by HTTP status.",
		}, []string{"status"}),
		decisionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pdp_decision_duration_seconds",
			Help:    "Time to answer a decision request, end to end in the handler (body read to response written).",
			Buckets: latencyBuckets,
		}),
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pdp_policy_evaluation_duration_seconds",
			Help:    "Time of the policy evaluation alone.",
			Buckets: latencyBuckets,
		}),
		evalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdp_policy_evaluation_errors_total",
			Help: "Policy evaluations that failed (each one a policy_error deny).",
		}),
		policyActivations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_policy_activations_total",
			Help: "Policy versions activated (result=\"activated\") or read and refused (result=\"refused\": compile or test failure, configuration errors in the data, over a size limit; the previous one kept serving), by source (dir or the bundle's name).",
		}, []string{"source", "result"}),
		policyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_policy_activation_failures_total",
			Help: "Policy versions refused (load, signature, compile or test failed; the previous one kept serving), by source.",
		}, []string{"source"}),
		policyActivatedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pdp_policy_last_activation_timestamp_seconds",
			Help: "When the active policy version was activated (Unix time).",
		}),
		jwksRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_jwks_refreshes_total",
			Help: "JWKS fetches of access-token issuers, by trigger (scheduled, unknown_key).",
		}, []string{"trigger"}),
		jwksErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_jwks_refresh_errors_total",
			Help: "JWKS fetches that failed (the previous keys kept serving), by trigger.",
		}, []string{"trigger"}),
		introspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_introspection_requests_total",
			Help: "RFC 7662 introspection calls, by outcome (active, inactive, error).",
		}, []string{"outcome"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdp_token_cache_hits_total",
			Help: "Token verifications answered from the verified-token cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdp_token_cache_misses_total",
			Help: "Token verifications that missed the cache (signature checked or token introspected).",
		}),
		setEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_ssf_events_total",
			Help: "Security event tokens received (pushed or polled), by event and outcome.",
		}, []string{"event", "outcome"}),
		ssfPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_ssf_polls_total",
			Help: "Polls of Shared Signals transmitters (RFC 8936), by result (ok, error: unreachable, an error status or an unreadable response).",
		}, []string{"result"}),
		revokeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_revoke_requests_total",
			Help: "RFC 7009 revocation requests, by outcome (revoked, invalid_token, client_mismatch, unauthenticated, invalid_request, store_failure).",
		}, []string{"outcome"}),
		storeUnavailable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_store_unavailable_total",
			Help: "Checks that met an unavailable shared state (Redis), by check and outcome (denied, allowed).",
		}, []string{"check", "outcome"}),
		shadowDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_shadow_decisions_total",
			Help: "Decisions sampled for the shadow policy (policy.shadow), by result: agree, disagree, skipped (every evaluation slot was busy) or error.",
		}, []string{"result"}),
		shadowDisagreed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdp_shadow_disagreements_total",
			Help: "Decisions the shadow policy answered otherwise, by the active and the shadow outcome (allow, deny) and the reason code: the shadow's first when it denies, else the active policy's.",
		}, []string{"active", "shadow", "reason"}),
	}
	for _, result := range []string{decision.ShadowAgree, decision.ShadowDisagree, decision.ShadowSkipped, decision.ShadowError} {
		m.shadowDecisions.WithLabelValues(result) // present from the start, at 0
	}
	m.reg.MustRegister(
		m.decisions, m.reasons, m.warnings, m.rejected, m.decisionDuration, m.evalDuration, m.evalErrors,
		m.policyActivations, m.policyFailures, m.policyActivatedAt,
		m.jwksRefreshes, m.jwksErrors, m.introspections, m.cacheHits, m.cacheMisses, m.setEvents, m.ssfPolls,
		m.revokeRequests, m.storeUnavailable, m.shadowDecisions, m.shadowDisagreed,
		// The Go runtime's and the process's own: goroutines, heap, GC
		// pauses, RSS, open file descriptors.
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.StoreStats != nil {
		m.reg.MustRegister(newStoreCollector(opts.StoreStats, opts.StoreStatsMaxAge))
	}
	if dc := opts.DecisionCache; dc != nil {
		for _, result := range []string{"hit", "miss"} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "pdp_decision_cache_total",
				Help:        "Reusable decisions, answered from a kept decision (hit) or evaluated (miss).",
				ConstLabels: prometheus.Labels{"result": result},
			}, func() float64 {
				hits, misses := dc()
				if result == "hit" {
					return float64(hits)
				}
				return float64(misses)
			}))
		}
	}
	if sg := opts.Sightings; sg != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pdp_sightings_dropped_total",
				Help: "Fingerprint sightings dropped because their write queue was full: the fingerprint guardrail never sees them.",
			}, func() float64 { return float64(sg().Dropped) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pdp_sightings_failed_total",
				Help: "Fingerprint sightings the store failed to write.",
			}, func() float64 { return float64(sg().Failed) }),
		)
	}
	if cs := opts.CacheSizes; cs != nil {
		for _, g := range []struct {
			name, help string
			get        func(CacheSizes) int64
		}{
			{"pdp_token_cache_entries", "Verified tokens in the cache.", func(c CacheSizes) int64 { return c.TokenEntries }},
			{"pdp_token_cache_bytes", "Estimated heap of the verified-token cache.", func(c CacheSizes) int64 { return c.TokenBytes }},
			{"pdp_token_cache_max_bytes", "Bound of the verified-token cache's estimated heap (tokens.cache_bytes).", func(c CacheSizes) int64 { return c.TokenMaxBytes }},
			{"pdp_decision_cache_entries", "Decisions kept for reuse.", func(c CacheSizes) int64 { return c.DecisionEntries }},
			{"pdp_decision_cache_bytes", "Estimated heap of the decisions kept for reuse.", func(c CacheSizes) int64 { return c.DecisionBytes }},
			{"pdp_decision_cache_max_bytes", "Bound of the kept decisions' estimated heap (decision_cache.max_bytes).", func(c CacheSizes) int64 { return c.DecisionMaxBytes }},
		} {
			m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
				func() float64 { return float64(g.get(cs())) }))
		}
	}
	if rep := opts.Replication; rep != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pdp_store_replication_connected",
				Help: "Whether the last call to the shared state (Redis) succeeded (1) or not (0).",
			}, func() float64 {
				if rep().Connected {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pdp_store_replication_stale_seconds",
				Help: "Follower lag: how long ago the local view of the revocations was last known to be current with the shared stream.",
			}, func() float64 { return rep().StaleSeconds }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pdp_store_replication_following",
				Help: "Whether the follower lag is within store.redis.max_follower_lag (1); 0 makes /readyz not ready.",
			}, func() float64 {
				if rep().Following {
					return 1
				}
				return 0
			}),
		)
	}
	return m
}

// Handler serves the registry in the Prometheus text format (GET /metrics);
// nil on a nil *Metrics (no route).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return nil
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry every metric is in (for tests and extra
// collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveDecision counts one decision and its end-to-end latency. A
// decision that failed (err != nil) is the policy_error deny it answers.
func (m *Metrics) ObserveDecision(dec *decision.Decision, err error, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.decisionDuration.Observe(elapsed.Seconds())
	if dec == nil {
		m.decisions.WithLabelValues("false", decision.CodePolicyError, grantNone).Inc()
		m.reasons.WithLabelValues(decision.CodePolicyError, grantNone).Inc()
		return
	}
	gt := GrantTypeLabel(dec.GrantType)
	primary := reasonNone // reasons are most important first
	if len(dec.Reasons) > 0 {
		primary = ReasonLabel(dec.Reasons[0].Code)
	}
	m.decisions.WithLabelValues(strconv.FormatBool(dec.Allow && err == nil), primary, gt).Inc()
	for _, r := range dec.Reasons {
		m.reasons.WithLabelValues(ReasonLabel(r.Code), gt).Inc()
	}
	for _, w := range dec.Warnings {
		m.warnings.WithLabelValues(ReasonLabel(w.Code), gt).Inc()
	}
}

// ObserveRejected counts a decision request refused before any decision
// with the HTTP status it was answered.
func (m *Metrics) ObserveRejected(status int) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(statusLabel(status)).Inc()
}

// ObserveEval records the duration of one policy evaluation
// (decision.EvalObserver).
func (m *Metrics) ObserveEval(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.evalDuration.Observe(d.Seconds())
	if err != nil {
		m.evalErrors.Inc()
	}
}

// ObserveShadow counts one decision sampled for the shadow policy
// (decision.ShadowObserver).
func (m *Metrics) ObserveShadow(result string) {
	if m == nil {
		return
	}
	m.shadowDecisions.WithLabelValues(oneOf(result, shadowResults)).Inc()
}

// ObserveShadowDisagreement counts one decision the shadow policy answered
// otherwise (decision.ShadowObserver).
func (m *Metrics) ObserveShadowDisagreement(activeAllow, shadowAllow bool, reason string) {
	if m == nil {
		return
	}
	label := reasonNone
	if reason != "" && reason != reasonNone {
		label = ReasonLabel(reason)
	}
	m.shadowDisagreed.WithLabelValues(outcomeLabel(activeAllow), outcomeLabel(shadowAllow), label).Inc()
}

// JWKSFetched counts one JWKS fetch (token.Observer).
func (m *Metrics) JWKSFetched(trigger string, err error) {
	if m == nil {
		return
	}
	trigger = oneOf(trigger, jwksTriggers)
	m.jwksRefreshes.WithLabelValues(trigger).Inc()
	if err != nil {
		m.jwksErrors.WithLabelValues(trigger).Inc()
	}
}

// Introspected counts one introspection call (token.Observer).
func (m *Metrics) Introspected(outcome string) {
	if m == nil {
		return
	}
	m.introspections.WithLabelValues(oneOf(outcome, introspectionOutcomes)).Inc()
}

// CacheLookup counts one verified-token cache lookup (token.Observer).
func (m *Metrics) CacheLookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// SETProcessed counts one security event token (ssf.Observer).
func (m *Metrics) SETProcessed(event, outcome string) {
	if m == nil {
		return
	}
	m.setEvents.WithLabelValues(oneOf(event, ssfEvents), oneOf(outcome, ssfOutcomes)).Inc()
}

// SSFPolled counts one poll of a Shared Signals transmitter
// (ssf.Observer).
func (m *Metrics) SSFPolled(ok bool) {
	if m == nil {
		return
	}
	result := "error"
	if ok {
		result = "ok"
	}
	m.ssfPolls.WithLabelValues(result).Inc()
}

// RevokeRequest counts one RFC 7009 revocation request
// (httpapi.RevokeObserver).
func (m *Metrics) RevokeRequest(outcome string) {
	if m == nil {
		return
	}
	m.revokeRequests.WithLabelValues(oneOf(outcome, revokeOutcomes)).Inc()
}

// StoreUnavailable counts one check that met an unavailable shared state,
// and whether the configured degradation let it pass.
func (m *Metrics) StoreUnavailable(c store.Check, allowed bool) {
	if m == nil {
		return
	}
	outcome := "denied"
	if allowed {
		outcome = "allowed"
	}
	m.storeUnavailable.WithLabelValues(oneOf(string(c), storeChecks), outcome).Inc()
}

// PolicyObserver counts policy activations and refusals; it implements
// policy.Observer.
type PolicyObserver struct{ m *Metrics }

// Policy returns the observer the policy loader reports to.
// On a nil *Metrics it is a nil *PolicyObserver, which records nothing.
func (m *Metrics) Policy() *PolicyObserver {
	if m == nil {
		return nil
	}
	return &PolicyObserver{m: m}
}

// Activated counts a policy version that became active. The revision is
// not a label (unbounded); it is in /v1/status and every decision log.
func (p *PolicyObserver) Activated(source, _ string) {
	if p == nil {
		return
	}
	p.m.policyActivations.WithLabelValues(oneOf(source, p.m.sources), "activated").Inc()
	p.m.policyActivatedAt.SetToCurrentTime()
}

// Failed counts a policy version that could not be activated; one that was
// read and refused counts as an activation with result "refused" too.
func (p *PolicyObserver) Failed(source string, err error) {
	if p == nil {
		return
	}
	p.m.policyFailures.WithLabelValues(oneOf(source, p.m.sources)).Inc()
	if errors.Is(err, policy.ErrRefused) {
		p.m.policyActivations.WithLabelValues(oneOf(source, p.m.sources), "refused").Inc()
	}
}

// Compile-time checks: Metrics is what the observed packages expect.
var (
	_ decision.EvalObserver   = (*Metrics)(nil)
	_ decision.ShadowObserver = (*Metrics)(nil)
	_ token.Observer          = (*Metrics)(nil)
	_ ssf.Observer            = (*Metrics)(nil)
	_ policy.Observer         = (*PolicyObserver)(nil)
)
