package httpapi

import (
	"net/http"
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
// keys loaded, ...); otherwise 503 naming what is not ready.
func (h *health) ready(w http.ResponseWriter, _ *http.Request) {
	var waiting []map[string]string
	for _, c := range h.checks {
		if err := c.Ready(); err != nil {
			waiting = append(waiting, map[string]string{"check": c.Name, "detail": err.Error()})
		}
	}
	if len(waiting) > 0 {
		writeProblem(w, Problem{
			Type: TypeNotReady, Title: "Not Ready", Status: http.StatusServiceUnavailable,
			Detail: "not every component is ready", Extensions: map[string]any{"checks": waiting},
		})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}
