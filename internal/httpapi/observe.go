package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
)

// DecisionLogger writes decision-log entries; *decisionlog.Logger is the
// one in use.
type DecisionLogger interface {
	Log(ctx context.Context, e decisionlog.Entry)
}

// DecisionMetrics counts decisions; *metrics.Metrics is the one in use.
type DecisionMetrics interface {
	// ObserveDecision counts a decision and its end-to-end latency.
	ObserveDecision(dec *decision.Decision, err error, elapsed time.Duration)
	// ObserveRejected counts a request refused before any decision.
	ObserveRejected(status int)
}

// observer records what a decision endpoint answered: metrics, and one
// decision-log entry per decision. Its zero value records nothing.
type observer struct {
	logs    DecisionLogger
	metrics DecisionMetrics
}

// rejected records a request refused with status before any decision.
func (o observer) rejected(status int) {
	if o.metrics != nil {
		o.metrics.ObserveRejected(status)
	}
}

// decided records a decision whose answer has been written to w; start is
// when the request arrived. The answer (written with its length) is
// flushed before the log entry is written, so that logging does not delay
// it.
func (o observer) decided(w http.ResponseWriter, r *http.Request, dec *decision.Decision, err error, start time.Time) {
	elapsed := time.Since(start)
	if o.metrics != nil {
		o.metrics.ObserveDecision(dec, err, elapsed)
	}
	if o.logs != nil && dec != nil {
		_ = http.NewResponseController(w).Flush()
		o.logs.Log(r.Context(), decisionlog.Entry{
			Decision: dec, Err: err, Latency: elapsed, RequestedBy: r.RemoteAddr, Time: start,
		})
	}
}
