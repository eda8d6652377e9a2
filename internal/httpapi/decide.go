package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/jsonast"
	"github.com/tokenguard/pdp/internal/policy"
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

// decideBody is the wire shape of POST /v1/decide.
type decideBody struct {
	Request *struct {
		Method        string                 `json:"method"`
		URL           string                 `json:"url"`
		Headers       map[string]headerValue `json:"headers"`
		RemoteIP      string                 `json:"remote_ip"`
		TLSClientCert string                 `json:"tls_client_cert"`
		Body          json.RawMessage        `json:"body"`
	} `json:"request"`
	Context json.RawMessage `json:"context"`
}

// headerValue is a header's value: a string, or an array of strings for a
// repeated header.
type headerValue []string

func (h *headerValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*h = headerValue{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("a header value must be a string or an array of strings")
	}
	*h = ss
	return nil
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
		dec = &decision.Decision{Status: http.StatusInternalServerError,
			Reasons: []policy.Reason{{Code: decision.CodePolicyError, Message: "the policy could not make a decision"}}}
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
	var b decideBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, badRequest("the body is not a valid decision request: " + jsonProblem(err))
	}
	if dec.More() {
		return nil, badRequest("the body holds more than one JSON value")
	}
	if b.Request == nil {
		return nil, badRequest("request is required")
	}
	raw := decision.RawRequest{
		Method:        b.Request.Method,
		URL:           b.Request.URL,
		RemoteIP:      b.Request.RemoteIP,
		ClientCertPEM: b.Request.TLSClientCert,
	}
	if len(b.Request.Headers) > 0 {
		raw.Headers = make(map[string][]string, len(b.Request.Headers))
		for k, v := range b.Request.Headers {
			raw.Headers[k] = v
		}
	}
	if body := bytes.TrimSpace(b.Request.Body); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		form, err := parseForm(body)
		if err != nil {
			return nil, badRequest("request.body: " + err.Error())
		}
		raw.Form = form
	}
	if c := bytes.TrimSpace(b.Context); len(c) > 0 && !bytes.Equal(c, []byte("null")) {
		v, err := jsonast.Parse(c, maxContextDepth)
		if err != nil {
			return nil, badRequest("context: " + err.Error())
		}
		obj, ok := v.(ast.Object)
		if !ok {
			return nil, badRequest("context must be an object")
		}
		raw.Context = obj
	}
	req, err := decision.NewRequest(raw)
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

// parseForm reads request.body: the form fields of the original request,
// as the application/x-www-form-urlencoded string or as an object of
// strings (or arrays of strings).
func parseForm(body []byte) (url.Values, error) {
	if body[0] == '"' {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, errors.New("not a string")
		}
		v, err := url.ParseQuery(s)
		if err != nil {
			return nil, errors.New("not application/x-www-form-urlencoded")
		}
		return v, nil
	}
	var obj map[string]headerValue
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, errors.New("must be a form string or an object of strings")
	}
	v := make(url.Values, len(obj))
	for k, vals := range obj {
		v[k] = vals
	}
	return v, nil
}

func badRequest(detail string) *Problem {
	return &Problem{Type: TypeInvalidRequest, Title: "Bad Request", Status: http.StatusBadRequest, Detail: detail}
}

// jsonProblem describes a JSON decoding error without echoing input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
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
