package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem document. Extensions carry members such as
// decision_id; Detail is always safe to show to the caller (causes go to the
// log, never into the body).
type Problem struct {
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Status     int            `json:"status"`
	Detail     string         `json:"detail,omitempty"`
	Extensions map[string]any `json:"-"`
}

// Problem types, stable: clients may switch on them.
const (
	problemBase        = "https://tokenguard.dev/problems/"
	TypeInvalidRequest = problemBase + "invalid-request"
	TypeTooLarge       = problemBase + "request-too-large"
	TypeMediaType      = problemBase + "unsupported-media-type"
	TypePolicyError    = problemBase + "policy-error"
	TypeUnauthorized   = problemBase + "unauthorized"
	TypeNotFound       = problemBase + "not-found"
	TypeMethod         = problemBase + "method-not-allowed"
	TypeNotReady       = problemBase + "not-ready"
	TypeStoreError     = problemBase + "store-error"
	TypeBackupBusy     = problemBase + "backup-in-progress"
)

// writeProblem is the one function that writes every API error.
func writeProblem(w http.ResponseWriter, p Problem) {
	body := map[string]any{"type": p.Type, "title": p.Title, "status": p.Status}
	if p.Detail != "" {
		body["detail"] = p.Detail
	}
	for k, v := range p.Extensions {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	b, _ := json.Marshal(body) // extensions are plain values
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// writeJSON writes a 2xx JSON answer, with its length: a complete answer
// can be flushed before the handler returns.
func writeJSON(w http.ResponseWriter, logger *slog.Logger, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		logger.Error("encode response", "error", err)
		writeProblem(w, Problem{Type: TypePolicyError, Title: "Internal Server Error", Status: http.StatusInternalServerError})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	if _, err := w.Write(append(b, '\n')); err != nil {
		logger.Warn("write response", "error", err)
	}
}
