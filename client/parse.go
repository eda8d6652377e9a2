package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// maxAnswerDepth bounds the nesting of a decision answer: the decision is
// two levels deep (token.scopes).
const maxAnswerDepth = 8

// ParseDecision reads a POST /v1/decide answer body. It is strict, so that
// nothing but a well-formed decision can become one: one JSON object, no
// member twice at any depth, bounded nesting, "allow" a boolean and
// "status" an integer present, an allow with a 2xx status and a deny with a
// 4xx or 5xx one, header names that are HTTP tokens and values on one
// line. Members it does not know are ignored (a newer PDP may add some).
// Errors wrap ErrNotDecision.
func ParseDecision(raw []byte) (*Decision, error) {
	if err := checkJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotDecision, err)
	}
	var wire struct {
		ID              *string           `json:"decision_id"`
		Allow           *bool             `json:"allow"`
		Status          *int              `json:"status"`
		Reasons         []Reason          `json:"reasons"`
		Warnings        []Reason          `json:"warnings"`
		Headers         map[string]string `json:"headers"`
		UpstreamHeaders map[string]string `json:"upstream_headers"`
		Token           *Token            `json:"token"`
		Policy          Policy            `json:"policy"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %s has the wrong type", ErrNotDecision, te.Field)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotDecision, err)
	}
	switch {
	case wire.Allow == nil:
		return nil, fmt.Errorf("%w: allow is missing", ErrNotDecision)
	case wire.Status == nil:
		return nil, fmt.Errorf("%w: status is missing", ErrNotDecision)
	case *wire.Allow && (*wire.Status < 200 || *wire.Status > 299):
		return nil, fmt.Errorf("%w: an allow with status %d", ErrNotDecision, *wire.Status)
	case !*wire.Allow && (*wire.Status < 400 || *wire.Status > 599):
		return nil, fmt.Errorf("%w: a deny with status %d", ErrNotDecision, *wire.Status)
	}
	for _, h := range []map[string]string{wire.Headers, wire.UpstreamHeaders} {
		for k, v := range h {
			if !isToken(k) || strings.ContainsAny(v, "\r\n\x00") {
				return nil, fmt.Errorf("%w: a header that is not one", ErrNotDecision)
			}
		}
	}
	d := &Decision{
		Allow: *wire.Allow, Status: *wire.Status, Reasons: wire.Reasons, Warnings: wire.Warnings,
		Headers: wire.Headers, UpstreamHeaders: wire.UpstreamHeaders, Token: wire.Token, Policy: wire.Policy,
	}
	if wire.ID != nil {
		d.ID = *wire.ID
	}
	if d.Reasons == nil {
		d.Reasons = []Reason{}
	}
	if d.Warnings == nil {
		d.Warnings = []Reason{}
	}
	if d.Headers == nil {
		d.Headers = map[string]string{}
	}
	if d.UpstreamHeaders == nil {
		d.UpstreamHeaders = map[string]string{}
	}
	return d, nil
}

// checkJSON makes sure raw is one JSON object with no member twice in any
// object (names compared as encoding/json matches them: case-insensitively)
// and at most maxAnswerDepth levels deep: encoding/json would keep the last
// of two "allow" members, or of "allow" and "Allow", silently.
func checkJSON(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // an object's next token is a key
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 || first {
				return errors.New("empty or truncated JSON")
			}
			return nil
		}
		if err != nil {
			return errors.New("malformed JSON")
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("not a JSON object")
			}
		} else if len(stack) == 0 {
			return errors.New("more than one JSON value")
		}
		first = false
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tok.(string) // the decoder gives only strings as keys
			k = foldKey(k)       // encoding/json matches names case-insensitively
			if top.keys[k] {
				return errors.New("a member appears twice")
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true // after this value, a key or the end
		}
		switch tok {
		case json.Delim('{'):
			if len(stack) >= maxAnswerDepth {
				return errors.New("nested too deeply")
			}
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
		case json.Delim('['):
			if len(stack) >= maxAnswerDepth {
				return errors.New("nested too deeply")
			}
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// foldKey maps a member name to one spelling of all those encoding/json
// takes for the same name (it matches names as bytes.EqualFold does): each
// rune becomes the smallest of its Unicode simple case folding orbit, so
// "Allow", "ALLOW" and "allow" are one name, as "ſtatus" and "status".
func foldKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), as a
// header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
