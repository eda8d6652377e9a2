package httpapi

import (
	"context"
	"net/http"
	"strings"
)

type health struct {
	checks []Check
}

// live answers liveness: the process serves HTTP.
func (h *health) live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// ready answers 200 only when every check passes (policies compiled, issuer
// keys loaded, ...); otherwise 503 naming the checks that failed, and
// nothing more: /readyz is open to everyone, so what failed and why (file
// paths, errors) is told only by /v1/status (readiness), behind the ops
// credential.
func (h *health) ready(w http.ResponseWriter, _ *http.Request) {
	var failed []string
	for _, c := range h.checks {
		if err := c.Ready(); err != nil {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) > 0 {
		writeProblem(w, Problem{
			Type: TypeNotReady, Title: "Not Ready", Status: http.StatusServiceUnavailable,
			Detail:     "not ready: " + strings.Join(failed, ", ") + " (details in /v1/status, readiness)",
			Extensions: map[string]any{"checks": failed},
		})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// Readiness is the readiness member of GET /v1/status: every check, and
// why a failing one fails.
type Readiness struct {
	Ready  bool             `json:"ready"`
	Checks []ReadinessCheck `json:"checks"`
}

// ReadinessCheck is one check of Readiness.
type ReadinessCheck struct {
	Check  string `json:"check"`
	Ready  bool   `json:"ready"`
	Detail string `json:"detail,omitempty"`
}

// readiness reports every check with its detail, for /v1/status.
func (h *health) readiness(context.Context) (any, error) {
	r := Readiness{Ready: true, Checks: make([]ReadinessCheck, 0, len(h.checks))}
	for _, c := range h.checks {
		rc := ReadinessCheck{Check: c.Name, Ready: true}
		if err := c.Ready(); err != nil {
			rc.Ready, rc.Detail, r.Ready = false, err.Error(), false
		}
		r.Checks = append(r.Checks, rc)
	}
	return r, nil
}
