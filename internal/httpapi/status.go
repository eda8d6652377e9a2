package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
)

// StatusPart is one member of GET /v1/status besides the policy status:
// store sizes, issuer keys, decision logging.
type StatusPart struct {
	Name string
	Get  func(ctx context.Context) (any, error)
}

type status struct {
	policy func() any
	parts  []StatusPart
	logger *slog.Logger
}

// serveHTTP answers GET /v1/status: one JSON object, the members of the
// policy status (active version, sources) and a member per part. A part
// that fails shows {"error": "unavailable"}; its cause goes to the log.
func (s *status) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{}
	if s.policy != nil {
		v := s.policy()
		if b, err := json.Marshal(v); err != nil || json.Unmarshal(b, &body) != nil {
			body = map[string]any{"policy": v} // not an object: a member of its own
		}
	}
	for _, p := range s.parts {
		if _, taken := body[p.Name]; taken {
			continue
		}
		v, err := p.Get(r.Context())
		if err != nil {
			s.logger.Warn("status unavailable", "part", p.Name, "error", err)
			v = map[string]string{"error": "unavailable"}
		}
		body[p.Name] = v
	}
	writeJSON(w, s.logger, http.StatusOK, body)
}
