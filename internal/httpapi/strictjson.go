package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jsonast"
)

// Every JSON body the API accepts is read by jsonast, the strict reader
// /v1/decide uses: exactly one JSON value in valid UTF-8, no member named
// twice in an object, no unpaired surrogate escape (never turned into
// U+FFFD), bounded size and nesting. What two JSON readers could read
// differently is refused with 400 before any handler acts on it.

// maxFlatDepth is the nesting of a flat request object: its members are
// scalars.
const maxFlatDepth = 1

// readStrictJSON reads r's body, at most limit bytes, and parses it with
// jsonast to at most depth levels.
func readStrictJSON(w http.ResponseWriter, r *http.Request, limit int64, depth int) ([]byte, ast.Value, *Problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, nil, &Problem{Type: TypeTooLarge, Title: "Content Too Large", Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the body exceeds %d bytes", limit)}
		}
		return nil, nil, badRequest("the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, badRequest("the body is not valid: empty body")
	}
	v, err := jsonast.Parse(body, depth)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonast: ")
		if errors.Is(err, jsonast.ErrSyntax) && strings.Contains(msg, "trailing data") {
			return nil, nil, badRequest("the body holds more than one JSON value")
		}
		return nil, nil, badRequest("the body is not valid: " + msg)
	}
	return body, v, nil
}

// decodeJSON reads a bounded, strict JSON object into v, a pointer to a
// struct of scalar members: every member name must be exactly one of v's
// JSON names (encoding/json alone would match "KIND" to "kind" and keep the
// last of the two).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *Problem {
	if p := requireJSON(r); p != nil {
		return p
	}
	body, val, p := readStrictJSON(w, r, maxAdminBody, maxFlatDepth)
	if p != nil {
		return p
	}
	obj, ok := val.(ast.Object)
	if !ok {
		return badRequest("the body is not valid: it must be a JSON object")
	}
	known := jsonNames(reflect.TypeOf(v).Elem())
	if err := members(obj, func(name string, _ *ast.Term) error {
		if !known[name] {
			return fmt.Errorf("unknown field %q", truncate(name, 64))
		}
		return nil
	}); err != nil {
		return badRequest("the body is not valid: " + err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("the body is not valid: " + jsonProblem(err))
	}
	return nil
}

// jsonNames returns the JSON member names of struct type t.
func jsonNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	return names
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
