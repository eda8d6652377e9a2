package decisionlog

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/decision"
)

// encoder writes decision-log events as JSON: the members of OPA's
// decision-log event (EventV1) that a decision has, so that receivers of
// OPA's decision logs read them unchanged. It is used by one goroutine.
type encoder struct {
	// labels is the encoded "labels" object (id, version and the
	// configured labels), the same for every event.
	labels []byte
	// result is where a decision is encoded (encoding/json), reused.
	result bytes.Buffer
	enc    *json.Encoder
}

func newEncoder(labels map[string]string) *encoder {
	e := &encoder{}
	e.labels, _ = json.Marshal(labels)
	e.enc = json.NewEncoder(&e.result)
	e.enc.SetEscapeHTML(false)
	return e
}

// appendEvent appends the event of r to b as one JSON object (no newline).
// The policy input is written with what mask.rego erases left out.
func (e *encoder) appendEvent(b []byte, r record) ([]byte, error) {
	dec := r.dec
	b = append(b, `{"labels":`...)
	b = append(b, e.labels...)
	b = append(b, `,"decision_id":`...)
	b = appendString(b, dec.ID)
	if rev := dec.Policy.Revision; rev != "" {
		b = append(b, `,"bundles":{"policy":{"revision":`...)
		b = appendString(b, rev)
		b = append(b, `}}`...)
	}
	b = append(b, `,"path":`...)
	b = appendString(b, decisionPath)
	var m mask
	if dec.Input != nil {
		m = maskOf(dec.Input)
		b = append(b, `,"input":`...)
		b = appendInput(b, dec.Input, m)
	}
	if r.err != nil {
		b = append(b, `,"error":{"code":"`+decision.CodePolicyError+`","message":`...)
		b = appendString(b, r.err.Error())
		b = append(b, '}')
	} else {
		e.result.Reset()
		if err := e.enc.Encode(dec); err != nil {
			return b, err
		}
		b = append(b, `,"result":`...)
		b = append(b, bytes.TrimSuffix(e.result.Bytes(), []byte{'\n'})...)
	}
	if dec.Input != nil {
		b = appendAnswers(b, dec.Answers)
	}
	if !m.empty() && dec.Input != nil {
		first := true
		for _, p := range m.paths() {
			if !erases(dec.Input, p) {
				continue
			}
			if first {
				b = append(b, `,"erased":[`...)
				first = false
			} else {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		if !first {
			b = append(b, ']')
		}
	}
	if r.by != "" {
		b = append(b, `,"requested_by":`...)
		b = appendString(b, r.by)
	}
	b = append(b, `,"timestamp":"`...)
	b = r.ts.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","metrics":{"timer_server_handler_ns":`...)
	b = strconv.AppendInt(b, r.latency.Nanoseconds(), 10)
	b = append(b, `},"custom":`...)
	b = appendCustom(b, r)
	if r.shadow != nil {
		e.result.Reset()
		if err := e.enc.Encode(r.shadow); err != nil {
			return b, err
		}
		b = append(b[:len(b)-1], `,"shadow":`...) // inside custom
		b = append(b, bytes.TrimSuffix(e.result.Bytes(), []byte{'\n'})...)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// Recorded are the built-ins whose answers an event records, in
// nd_builtin_cache: the ones that read the store. (pdp.route depends on
// its arguments alone, and other nondeterministic built-ins are not the
// decision point's to record.)
var Recorded = []string{builtins.RevocationName, builtins.LastSeenName}

// appendAnswers appends the answers of the Recorded built-ins as OPA's
// nd_builtin_cache member: {built-in: {arguments: answer}}, each key the
// JSON text of the array of arguments. Nothing when none was called.
func appendAnswers(b []byte, ndb topdown.NDBCache) []byte {
	first := true
	var key []byte
	for _, name := range Recorded {
		obj, ok := ndb[name]
		if !ok || obj.Len() == 0 {
			continue
		}
		if first {
			b = append(b, `,"nd_builtin_cache":{`...)
			first = false
		} else {
			b = append(b, ',')
		}
		b = appendString(b, name)
		b = append(b, ":{"...)
		n := 0
		obj.Foreach(func(k, v *ast.Term) {
			if n > 0 {
				b = append(b, ',')
			}
			n++
			key = appendValue(key[:0], k.Value)
			b = appendString(b, string(key))
			b = append(b, ':')
			b = appendValue(b, v.Value)
		})
		b = append(b, '}')
	}
	if !first {
		b = append(b, '}')
	}
	return b
}

// erases says whether the mask path p removes something from input: OPA
// lists in "erased" only the paths it found.
func erases(input ast.Value, p string) bool {
	req := field(input, "request")
	switch p {
	case "/input/request/headers":
		return req != nil && field(req, "headers") != nil
	case "/input/request/query":
		return req != nil && field(req, "query") != nil
	case "/input/request/url":
		return req != nil && field(req, "url") != nil
	}
	name := p[len("/input/request/headers/"):]
	h, ok := field(req, "headers").(ast.Object)
	return ok && h.Get(ast.StringTerm(name)) != nil
}

// appendCustom appends the fields a reader filters on, flat: outcome,
// reason codes, grant type, client, the token's SHA-256 (never the token)
// and the latency.
func appendCustom(b []byte, r record) []byte {
	dec := r.dec
	b = append(b, `{"allow":`...)
	b = strconv.AppendBool(b, dec.Allow && r.err == nil)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(dec.Status), 10)
	b = append(b, `,"reasons":[`...)
	for i, reason := range dec.Reasons {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, reason.Code)
	}
	b = append(b, `],"grant_type":`...)
	b = appendString(b, dec.GrantType)
	b = append(b, `,"latency_ns":`...)
	b = strconv.AppendInt(b, r.latency.Nanoseconds(), 10)
	if dec.Token != nil && dec.Token.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendString(b, dec.Token.ClientID)
	}
	if dec.TokenHash != "" {
		b = append(b, `,"token_sha256":`...)
		b = appendString(b, dec.TokenHash)
	}
	if dec.Reused {
		// Answered from an earlier decision; input.now is that decision's.
		b = append(b, `,"reused":true`...)
	}
	if dec.Explain {
		// Explained (POST /v1/admin/explain), not decided: nothing was
		// written for it, and no gateway acted on it.
		b = append(b, `,"explain":true`...)
	}
	if dec.Policy.Module != "" {
		b = append(b, `,"module":`...)
		b = appendString(b, dec.Policy.Module)
	}
	return append(b, '}')
}

// appendInput appends the policy input with m's paths left out.
func appendInput(b []byte, input ast.Value, m mask) []byte {
	obj, ok := input.(ast.Object)
	if !ok || m.empty() {
		return appendValue(b, input)
	}
	return appendObject(b, obj, func(k string, v ast.Value) (ast.Value, bool) {
		if k != "request" {
			return v, true
		}
		req, ok := v.(ast.Object)
		if !ok {
			return v, true
		}
		return filtered{req, func(k string, v ast.Value) (ast.Value, bool) {
			switch k {
			case "query", "url":
				return v, !m.query
			case "headers":
				if m.allHeaders {
					return nil, false
				}
				h, ok := v.(ast.Object)
				if !ok || len(m.headers) == 0 {
					return v, true
				}
				return filtered{h, func(k string, v ast.Value) (ast.Value, bool) {
					for _, name := range m.headers {
						if k == name {
							return nil, false
						}
					}
					return v, true
				}}, true
			}
			return v, true
		}}, true
	})
}

// filtered is an object written with some members left out or replaced:
// keep says what to write for a string key.
type filtered struct {
	ast.Object
	keep func(k string, v ast.Value) (ast.Value, bool)
}

// appendObject appends obj's members, each through keep when its key is a
// string.
func appendObject(b []byte, obj ast.Object, keep func(string, ast.Value) (ast.Value, bool)) []byte {
	b = append(b, '{')
	first := true
	obj.Foreach(func(k, v *ast.Term) {
		val := v.Value
		if s, ok := k.Value.(ast.String); ok && keep != nil {
			var write bool
			if val, write = keep(string(s), val); !write {
				return
			}
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendKey(b, k.Value)
		b = append(b, ':')
		b = appendValue(b, val)
	})
	return append(b, '}')
}

// appendKey appends an object key as a JSON string: a string as it is,
// any other value as its Rego text (as ast.JSON does).
func appendKey(b []byte, k ast.Value) []byte {
	if s, ok := k.(ast.String); ok {
		return appendString(b, string(s))
	}
	return appendString(b, k.String())
}

// appendValue appends v as JSON; sets become arrays.
func appendValue(b []byte, v ast.Value) []byte {
	switch x := v.(type) {
	case ast.Null:
		return append(b, "null"...)
	case ast.Boolean:
		return strconv.AppendBool(b, bool(x))
	case ast.Number:
		return append(b, string(x)...)
	case ast.String:
		return appendString(b, string(x))
	case *ast.Array:
		b = append(b, '[')
		for i := range x.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, x.Elem(i).Value)
		}
		return append(b, ']')
	case ast.Set:
		b = append(b, '[')
		first := true
		x.Foreach(func(t *ast.Term) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendValue(b, t.Value)
		})
		return append(b, ']')
	case filtered:
		return appendObject(b, x.Object, x.keep)
	case ast.Object:
		return appendObject(b, x, nil)
	}
	// Not JSON (a ref, a variable, a comprehension): never in an input,
	// written as its Rego text.
	return appendString(b, v.String())
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json writes it
// without HTML escaping: invalid UTF-8 becomes U+FFFD, U+2028 and U+2029
// are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
