package natsauth

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an authorization request, the result label of
// pdp_nats_authorizations_total.
const (
	resultAllow      = "allow"
	resultDeny       = "deny"
	resultOverloaded = "overloaded"
	resultInvalid    = "invalid"
)

// Results of a kick, the result label of pdp_nats_kicks_total.
const (
	kickClosed = "closed"
	kickGone   = "gone"
	kickError  = "error"
)

var (
	authorizationResults = []string{resultAllow, resultDeny, resultOverloaded, resultInvalid}
	kickResults          = []string{kickClosed, kickGone, kickError}
)

// counters are the service's counts, read by its collector and status.
type counters struct {
	authorizations map[string]*atomic.Uint64
	kicks          map[string]*atomic.Uint64
	grantDecisions atomic.Uint64
	checkErrors    atomic.Uint64
	durationCount  atomic.Uint64
	durationNanos  atomic.Uint64
}

func newCounters() *counters {
	c := &counters{authorizations: map[string]*atomic.Uint64{}, kicks: map[string]*atomic.Uint64{}}
	for _, r := range authorizationResults {
		c.authorizations[r] = new(atomic.Uint64)
	}
	for _, r := range kickResults {
		c.kicks[r] = new(atomic.Uint64)
	}
	return c
}

// observe adds the duration of one answered request.
func (c *counters) observe(d time.Duration) {
	c.durationCount.Add(1)
	c.durationNanos.Add(uint64(max(d, 0)))
}

var (
	authorizationsDesc = prometheus.NewDesc("pdp_nats_authorizations_total",
		"NATS authorization requests answered, by result: allow, deny, overloaded (max_connections tracked, or no room), invalid (not a request a server sent; not answered).",
		[]string{"result"}, nil)
	authorizationSecondsDesc = prometheus.NewDesc("pdp_nats_authorization_seconds",
		"Time spent answering NATS authorization requests (the connect decision and one decision per NATS destination and operation).",
		nil, nil)
	grantDecisionsDesc = prometheus.NewDesc("pdp_nats_grant_decisions_total",
		"Decisions made on NATS destinations to fill the permissions of user JWTs.", nil, nil)
	kicksDesc = prometheus.NewDesc("pdp_nats_kicks_total",
		"Live NATS connections closed because their token, session, subject or client was revoked, by result: closed, gone (already closed), error (retried at the next check).",
		[]string{"result"}, nil)
	connectionsDesc = prometheus.NewDesc("pdp_nats_connections",
		"Live NATS connections tracked for revocation.", nil, nil)
	checkErrorsDesc = prometheus.NewDesc("pdp_nats_revocation_check_errors_total",
		"Revocation look-ups of live NATS connections that failed (retried at the next check).", nil, nil)
)

// Collector exports the service's metrics (pdp_nats_*).
func (s *Service) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Service }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{authorizationsDesc, authorizationSecondsDesc, grantDecisionsDesc, kicksDesc, connectionsDesc, checkErrorsDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := c.s.counts
	for _, r := range authorizationResults {
		ch <- prometheus.MustNewConstMetric(authorizationsDesc, prometheus.CounterValue, float64(n.authorizations[r].Load()), r)
	}
	ch <- prometheus.MustNewConstSummary(authorizationSecondsDesc, n.durationCount.Load(), float64(n.durationNanos.Load())/1e9, nil)
	ch <- prometheus.MustNewConstMetric(grantDecisionsDesc, prometheus.CounterValue, float64(n.grantDecisions.Load()))
	for _, r := range kickResults {
		ch <- prometheus.MustNewConstMetric(kicksDesc, prometheus.CounterValue, float64(n.kicks[r].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(c.s.conns.len()))
	ch <- prometheus.MustNewConstMetric(checkErrorsDesc, prometheus.CounterValue, float64(n.checkErrors.Load()))
}

// Status is the nats part of GET /v1/status.
type Status struct {
	// Connected says whether the callout and system connections are up.
	Connected bool `json:"connected"`
	// Account is the account authorized clients are placed in.
	Account string `json:"account"`
	// Issuer is the public key that signs the user JWTs.
	Issuer string `json:"issuer"`
	// Connections counts the live connections tracked, of MaxConnections.
	Connections    int `json:"connections"`
	MaxConnections int `json:"max_connections"`
	// Authorizations counts the answers by result.
	Authorizations map[string]uint64 `json:"authorizations"`
	// Kicks counts the revoked connections closed, by result.
	Kicks map[string]uint64 `json:"kicks"`
	// LastCheck is when the live connections were last checked for
	// revocations; absent before the first check.
	LastCheck *time.Time `json:"last_check,omitempty"`
}

// Status reports the service's state.
func (s *Service) Status() Status {
	st := Status{Connected: s.connected.Load(), Account: s.opts.Account, Issuer: s.issuer, Connections: s.conns.len(),
		MaxConnections: s.opts.MaxConnections, Authorizations: map[string]uint64{}, Kicks: map[string]uint64{}}
	for _, r := range authorizationResults {
		st.Authorizations[r] = s.counts.authorizations[r].Load()
	}
	for _, r := range kickResults {
		st.Kicks[r] = s.counts.kicks[r].Load()
	}
	if ns := s.lastCheck.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		st.LastCheck = &t
	}
	return st
}
