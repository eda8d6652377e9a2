package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/policy"
)

// Explainer explains a decision without side effects; *decision.Engine is
// the one in use.
type Explainer interface {
	Explain(ctx context.Context, req *decision.Request) (*decision.Explained, error)
}

// explain serves POST /v1/admin/explain: the body and limits of
// /v1/decide, the decision /v1/decide would make, changing nothing, with
// what each guardrail compared (explanation) and the writes left undone
// (unwritten). The decision is logged, marked as an explanation; it is not
// counted in the decision metrics (no gateway acted on it).
type explain struct {
	explainer Explainer
	logs      DecisionLogger
	logger    *slog.Logger
}

func (x *explain) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := decision.NewID()
	w.Header().Set("X-Decision-Id", id)
	req, p := readDecideRequest(w, r)
	if p != nil {
		p.Extensions = map[string]any{"decision_id": id}
		writeProblem(w, *p)
		return
	}
	ex, err := x.explainer.Explain(r.Context(), req)
	if ex == nil || ex.Decision == nil {
		if err == nil {
			err = errors.New("no decision")
		}
		ex = &decision.Explained{Decision: decision.Failed()}
	}
	dec := ex.Decision
	dec.ID, dec.Explain = id, true
	if x.logs != nil {
		defer func() {
			x.logs.Log(r.Context(), decisionlog.Entry{Decision: dec, Err: err, Latency: time.Since(start), RequestedBy: r.RemoteAddr, Time: start})
		}()
	}
	if err != nil {
		x.logger.Error("explanation failed", "decision_id", id, "error", err)
		detail := "the policy could not make a decision; /v1/decide denies this request"
		if errors.Is(err, decision.ErrExplainUnsupported) {
			detail = "this decision cannot be explained without side effects (see the log)"
		}
		writeProblem(w, Problem{
			Type: TypePolicyError, Title: "Policy Error", Status: http.StatusInternalServerError, Detail: detail,
			Extensions: map[string]any{"decision_id": id, "allow": false,
				"reasons": []map[string]string{{"code": decision.CodePolicyError, "message": "the policy could not make a decision"}}},
		})
		return
	}
	body, err := explainedJSON(dec, ex.Explanation, ex.Unwritten)
	if err != nil {
		x.logger.Error("encode response", "error", err)
		writeProblem(w, Problem{Type: TypePolicyError, Title: "Internal Server Error", Status: http.StatusInternalServerError})
		return
	}
	writeJSON(w, x.logger, http.StatusOK, body)
}

// explainedJSON is the decision's JSON object with explanation and
// unwritten added.
func explainedJSON(dec *decision.Decision, xs []policy.Explanation, unwritten []decision.Unwritten) (json.RawMessage, error) {
	b, err := json.Marshal(dec)
	if err != nil {
		return nil, err
	}
	if xs == nil {
		xs = []policy.Explanation{}
	}
	if unwritten == nil {
		unwritten = []decision.Unwritten{}
	}
	tail, err := json.Marshal(struct {
		Explanation []policy.Explanation `json:"explanation"`
		Unwritten   []decision.Unwritten `json:"unwritten"`
	}{xs, unwritten})
	if err != nil {
		return nil, err
	}
	// {"decision_id":...} + {"explanation":...} → {"decision_id":...,"explanation":...}
	out := append(b[:len(b)-1:len(b)-1], ',')
	return append(out, tail[1:]...), nil
}
