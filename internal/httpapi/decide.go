package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
)

// MaxDecideBody bounds a POST /v1/decide body.
const MaxDecideBody = 1 << 20

// maxContextDepth bounds the nesting of the caller's context object.
const maxContextDepth = 16

type decide struct {
	decider  Decider
	logger   *slog.Logger
	observer observer
}

func (d *decide) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := decision.NewID()
	w.Header().Set("X-Decision-Id", id)
	req, p := readDecideRequest(w, r)
	if p != nil {
		p.Extensions = map[string]any{"decision_id": id}
		writeProblem(w, *p)
		d.observer.rejected(p.Status)
		return
	}
	dec, err := d.decider.Decide(r.Context(), req)
	if dec == nil { // never from the engine; a deny all the same
		dec = decision.Failed()
		if err == nil {
			err = errors.New("no decision")
		}
	}
	dec.ID = id
	defer d.observer.decided(w, r, dec, err, start)
	if err != nil {
		d.logger.Error("decision failed", "decision_id", id, "error", err)
		writeProblem(w, Problem{
			Type: TypePolicyError, Title: "Policy Error", Status: http.StatusInternalServerError,
			Detail: "the policy could not make a decision; deny the request",
			Extensions: map[string]any{
				"decision_id": id,
				"allow":       false,
				"reasons":     []map[string]string{{"code": decision.CodePolicyError, "message": "the policy could not make a decision"}},
			},
		})
		return
	}
	writeJSON(w, d.logger, http.StatusOK, dec)
}

// readDecideRequest reads and validates the body; a non-nil Problem is the
// caller's error.
func readDecideRequest(w http.ResponseWriter, r *http.Request) (*decision.Request, *Problem) {
	if p := requireJSON(r); p != nil {
		return nil, p
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDecideBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &Problem{Type: TypeTooLarge, Title: "Content Too Large", Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the body exceeds %d bytes", MaxDecideBody)}
		}
		return nil, badRequest("the body could not be read")
	}
	raw, p := decodeDecideBody(body)
	if p != nil {
		return nil, p
	}
	req, err := raw.build()
	if err != nil {
		return nil, badRequest(strings.TrimPrefix(err.Error(), decision.ErrInvalidRequest.Error()+": "))
	}
	return req, nil
}

// requireJSON refuses a body that is not application/json with 415.
func requireJSON(r *http.Request) *Problem {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &Problem{Type: TypeMediaType, Title: "Unsupported Media Type", Status: http.StatusUnsupportedMediaType,
			Detail: "the body must be application/json"}
	}
	return nil
}

func badRequest(detail string) *Problem {
	return &Problem{Type: TypeInvalidRequest, Title: "Bad Request", Status: http.StatusBadRequest, Detail: detail}
}

// jsonProblem describes a JSON decoding error without echoing input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var we *whenError
	switch {
	case errors.As(err, &we):
		return we.Error()
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s has the wrong type", te.Field)
	case errors.Is(err, io.EOF):
		return "empty body"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "malformed JSON"
	}
}
