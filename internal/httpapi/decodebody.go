package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// decideBody is a POST /v1/decide body, read: exactly one of request and
// message is set.
type decideBody struct {
	request *decision.RawRequest
	message *decision.RawMessage
}

// build validates and normalises what the body asks about.
func (b decideBody) build() (*decision.Request, error) {
	if b.message != nil {
		return decision.NewMessage(*b.message)
	}
	return decision.NewRequest(*b.request)
}

// decodeDecideBody reads the wire shape of POST /v1/decide:
//
//	{"request": {"method", "url", "headers": {name: string | [string]},
//	             "remote_ip", "tls_client_cert", "body": form},
//	 "context": {...}}
//
// or, for a messaging operation, "message" instead of "request":
//
//	{"message": {"broker", "operation", "destination", "vhost",
//	             "token" | "headers": {"authorization": ...}, "remote_ip"},
//	 "context": {...}}
//
// It parses with jsonast, as every parser of attacker input here does: one
// JSON value, no duplicate member at any depth (a gateway and tokenguard
// must never read two different requests from one body), bounded nesting,
// unknown members refused. String members may be null (absent).
func decodeDecideBody(body []byte) (decideBody, *Problem) {
	var out decideBody
	if len(bytes.TrimSpace(body)) == 0 {
		return out, badRequest("the body is not a valid decision request: empty body")
	}
	v, err := jsonast.Parse(body, maxContextDepth+1)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonast: ")
		switch {
		case errors.Is(err, jsonast.ErrSyntax) && strings.Contains(msg, "trailing data"):
			return out, badRequest("the body holds more than one JSON value")
		case errors.Is(err, jsonast.ErrSyntax):
			return out, badRequest("the body is not a valid decision request: syntax error: " + msg)
		}
		return out, badRequest("the body is not a valid decision request: " + msg)
	}
	root, ok := v.(ast.Object)
	if !ok {
		return out, badRequest("the body is not a valid decision request: it must be a JSON object")
	}
	var req, msg ast.Object
	var context ast.Object
	if err := members(root, func(name string, t *ast.Term) error {
		switch name {
		case "request", "message":
			if _, null := t.Value.(ast.Null); null {
				return nil
			}
			o, ok := t.Value.(ast.Object)
			if !ok {
				return fmt.Errorf("%s must be an object", name)
			}
			if name == "request" {
				req = o
			} else {
				msg = o
			}
		case "context":
			switch c := t.Value.(type) {
			case ast.Null:
			case ast.Object:
				context = c
			default:
				return errors.New("context must be an object")
			}
		default:
			return fmt.Errorf("unknown field %q", name)
		}
		return nil
	}); err != nil {
		return out, decodeProblem(err)
	}
	switch {
	case req != nil && msg != nil:
		return out, badRequest("the body is not a valid decision request: give request or message, not both")
	case msg != nil:
		m, err := decodeMessage(msg)
		if err != nil {
			return out, decodeProblem(err)
		}
		m.Context = context
		out.message = &m
		return out, nil
	case req == nil:
		return out, badRequest("request is required")
	}
	raw := decision.RawRequest{Context: context}
	err = members(req, func(name string, t *ast.Term) error {
		var err error
		switch name {
		case "method":
			raw.Method, err = stringMember("request.method", t)
		case "url":
			raw.URL, err = stringMember("request.url", t)
		case "remote_ip":
			raw.RemoteIP, err = stringMember("request.remote_ip", t)
		case "tls_client_cert":
			raw.ClientCertPEM, err = stringMember("request.tls_client_cert", t)
		case "headers":
			raw.Headers, err = headersMember(t)
		case "body":
			raw.Form, err = formMember(t)
		default:
			err = fmt.Errorf("unknown field %q", "request."+name)
		}
		return err
	})
	if err != nil {
		return out, decodeProblem(err)
	}
	out.request = &raw
	return out, nil
}

// decodeMessage reads the members of a "message" object.
func decodeMessage(obj ast.Object) (decision.RawMessage, error) {
	var m decision.RawMessage
	err := members(obj, func(name string, t *ast.Term) error {
		var err error
		switch name {
		case "broker":
			m.Broker, err = stringMember("message.broker", t)
		case "operation":
			m.Operation, err = stringMember("message.operation", t)
		case "destination":
			m.Destination, err = stringMember("message.destination", t)
		case "vhost":
			m.VHost, err = stringMember("message.vhost", t)
		case "token":
			m.Token, err = stringMember("message.token", t)
		case "remote_ip":
			m.RemoteIP, err = stringMember("message.remote_ip", t)
		case "headers":
			m.Headers, err = headersMember(t)
			if err != nil {
				err = errors.New(strings.Replace(err.Error(), "request.headers", "message.headers", 1))
			}
		default:
			err = fmt.Errorf("unknown field %q", "message."+name)
		}
		return err
	})
	return m, err
}

func decodeProblem(err error) *Problem {
	return badRequest("the body is not a valid decision request: " + err.Error())
}

// members calls f for every member of obj, in order, until one fails.
func members(obj ast.Object, f func(string, *ast.Term) error) error {
	return obj.Iter(func(k, v *ast.Term) error {
		name, ok := k.Value.(ast.String)
		if !ok { // jsonast never makes another key; be strict anyway
			return errors.New("member names must be strings")
		}
		return f(string(name), v)
	})
}

func stringMember(field string, t *ast.Term) (string, error) {
	switch s := t.Value.(type) {
	case ast.String:
		return string(s), nil
	case ast.Null:
		return "", nil
	}
	return "", fmt.Errorf("%s has the wrong type", field)
}

// stringsOf reads a string, or an array of strings.
func stringsOf(t *ast.Term) ([]string, bool) {
	switch x := t.Value.(type) {
	case ast.String:
		return []string{string(x)}, true
	case *ast.Array:
		out := make([]string, x.Len())
		for i := range x.Len() {
			s, ok := x.Elem(i).Value.(ast.String)
			if !ok {
				return nil, false
			}
			out[i] = string(s)
		}
		return out, true
	}
	return nil, false
}

// stringsMap reads an object whose members are strings or arrays of
// strings; anything else is the error with message bad.
func stringsMap(obj ast.Object, bad string) (map[string][]string, error) {
	out := make(map[string][]string, obj.Len())
	err := members(obj, func(name string, v *ast.Term) error {
		vals, ok := stringsOf(v)
		if !ok {
			return errors.New(bad)
		}
		out[name] = vals
		return nil
	})
	return out, err
}

func headersMember(t *ast.Term) (map[string][]string, error) {
	switch h := t.Value.(type) {
	case ast.Null:
		return nil, nil
	case ast.Object:
		if h.Len() == 0 {
			return nil, nil
		}
		return stringsMap(h, "request.headers: a header value must be a string or an array of strings")
	}
	return nil, errors.New("request.headers must be an object")
}

// formMember reads request.body: the form fields of the original request,
// as the application/x-www-form-urlencoded string or as an object of
// strings (or arrays of strings).
func formMember(t *ast.Term) (url.Values, error) {
	switch b := t.Value.(type) {
	case ast.Null:
		return nil, nil
	case ast.String:
		v, err := url.ParseQuery(string(b))
		if err != nil {
			return nil, errors.New("request.body: not application/x-www-form-urlencoded")
		}
		return v, nil
	case ast.Object:
		return stringsMap(b, "request.body: must be a form string or an object of strings")
	}
	return nil, errors.New("request.body: must be a form string or an object of strings")
}
