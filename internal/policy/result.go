package policy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// Result is the policy's decision, read from data.tokenguard.main.decision.
type Result struct {
	Allow           bool
	Status          int
	Reasons         []Reason
	Headers         map[string]string
	UpstreamHeaders map[string]string
	GrantType       string
	Module          string
	// Warnings are the reasons of guardrails in monitor mode: reported, not
	// enforced.
	Warnings []Reason
	// Effects are what the policy asks Go to carry out after the decision.
	Effects []Effect
	// ValidUntil is when the decision stops holding for the same input
	// but input.now (decision.valid_until); zero when it names no instant.
	// ValidUntilSet says whether the decision carried the field at all
	// (a number or null).
	ValidUntil    time.Time
	ValidUntilSet bool
	// Nondeterministic names the nondeterministic built-ins the
	// evaluation called (pdp.*, time.now_ns, http.send, ...).
	Nondeterministic []string
	// NDBuiltinCache is what they answered, by built-in and arguments
	// (OPA's nd_builtin_cache): decision logs record the pdp.* answers so
	// that a replay can answer as the decision's evaluation did.
	NDBuiltinCache builtins.NDBCache
}

// Effect is one action a decision asks for. Only Revoke exists.
type Effect struct {
	Revoke *RevokeEffect
}

// RevokeEffect asks for a revocation (kind jti, subject, session or client)
// to be stored before the answer is given.
type RevokeEffect struct {
	Kind   string
	Issuer string
	Value  string
	Reason string
}

// Reason is one reason code with a message safe to show to a client.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var (
	keyAllow    = ast.StringTerm("allow")
	keyStatus   = ast.StringTerm("status")
	keyReasons  = ast.StringTerm("reasons")
	keyHeaders  = ast.StringTerm("headers")
	keyUpstream = ast.StringTerm("upstream_headers")
	keyGrant    = ast.StringTerm("grant_type")
	keyModule   = ast.StringTerm("module")
	keyWarnings = ast.StringTerm("warnings")
	keyEffects  = ast.StringTerm("effects")
	keyRevoke   = ast.StringTerm("revoke")
	keyKind     = ast.StringTerm("kind")
	keyIss      = ast.StringTerm("iss")
	keyValue    = ast.StringTerm("value")
	keyReason   = ast.StringTerm("reason")
	keyCode     = ast.StringTerm("code")
	keyMessage  = ast.StringTerm("message")
	keyValid    = ast.StringTerm("valid_until")
)

// parseResult reads the decision object strictly: allow must be a boolean,
// a deny must carry at least one reason and a 4xx status, an allow none.
// Anything else is an error, which the caller turns into a deny.
func parseResult(v ast.Value) (Result, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Result{}, fmt.Errorf("decision is %s, not an object", ast.ValueName(v))
	}
	var r Result
	at := obj.Get(keyAllow)
	if at == nil {
		return Result{}, errors.New("decision.allow is not a boolean")
	}
	allow, ok := at.Value.(ast.Boolean)
	if !ok {
		return Result{}, errors.New("decision.allow is not a boolean")
	}
	r.Allow = bool(allow)
	status, ok := intOf(obj.Get(keyStatus))
	if !ok {
		return Result{}, errors.New("decision.status is not an integer")
	}
	r.Status = status
	var err error
	if r.Reasons, err = reasonsOf(obj.Get(keyReasons)); err != nil {
		return Result{}, err
	}
	if w := obj.Get(keyWarnings); w != nil {
		if r.Warnings, err = reasonsOf(w); err != nil {
			return Result{}, fmt.Errorf("decision.warnings: %w", err)
		}
	}
	if r.Effects, err = effectsOf(obj.Get(keyEffects)); err != nil {
		return Result{}, err
	}
	if r.Headers, err = headersOf(obj.Get(keyHeaders), "headers"); err != nil {
		return Result{}, err
	}
	if r.UpstreamHeaders, err = headersOf(obj.Get(keyUpstream), "upstream_headers"); err != nil {
		return Result{}, err
	}
	if r.ValidUntil, r.ValidUntilSet, err = validUntilOf(obj.Get(keyValid)); err != nil {
		return Result{}, err
	}
	r.GrantType, _ = stringOf(obj.Get(keyGrant))
	r.Module, _ = stringOf(obj.Get(keyModule))
	switch {
	case r.Allow && len(r.Reasons) > 0:
		return Result{}, errors.New("decision allows with deny reasons")
	case r.Allow && r.Status != 200:
		return Result{}, fmt.Errorf("decision allows with status %d", r.Status)
	case !r.Allow && len(r.Reasons) == 0:
		return Result{}, errors.New("decision denies without a reason")
	case !r.Allow && (r.Status < 400 || r.Status > 599):
		return Result{}, fmt.Errorf("decision denies with status %d", r.Status)
	}
	return r, nil
}

// validUntilOf reads decision.valid_until: absent, null, or an integer
// number of nanoseconds since the epoch.
func validUntilOf(t *ast.Term) (time.Time, bool, error) {
	if t == nil {
		return time.Time{}, false, nil
	}
	if _, ok := t.Value.(ast.Null); ok {
		return time.Time{}, true, nil
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return time.Time{}, false, errors.New("decision.valid_until is neither null nor a number")
	}
	ns, ok := n.Int64()
	if !ok {
		// A fractional iat makes a fractional instant: round down, which
		// only ends the decision earlier.
		f, fok := n.Float64()
		if !fok || math.IsNaN(f) || f >= math.MaxInt64 {
			return time.Time{}, false, errors.New("decision.valid_until is not a number of nanoseconds")
		}
		ns = int64(math.Floor(f))
	}
	if ns <= 0 {
		return time.Time{}, false, errors.New("decision.valid_until is not a positive number of nanoseconds")
	}
	return time.Unix(0, ns), true, nil
}

func intOf(t *ast.Term) (int, bool) {
	if t == nil {
		return 0, false
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, false
	}
	i, ok := n.Int()
	return i, ok
}

func stringOf(t *ast.Term) (string, bool) {
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

func reasonsOf(t *ast.Term) ([]Reason, error) {
	if t == nil {
		return nil, errors.New("decision.reasons is missing")
	}
	var out []Reason
	add := func(e *ast.Term) error {
		o, ok := e.Value.(ast.Object)
		if !ok {
			return errors.New("decision.reasons has a non-object entry")
		}
		code, ok := stringOf(o.Get(keyCode))
		if !ok || code == "" {
			return errors.New("decision.reasons has an entry without a code")
		}
		msg, _ := stringOf(o.Get(keyMessage))
		out = append(out, Reason{Code: code, Message: msg})
		return nil
	}
	switch c := t.Value.(type) {
	case *ast.Array:
		for i := range c.Len() {
			if err := add(c.Elem(i)); err != nil {
				return nil, err
			}
		}
	case ast.Set:
		sorted := c.Sorted()
		for i := range sorted.Len() {
			if err := add(sorted.Elem(i)); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errors.New("decision.reasons is not an array")
	}
	return out, nil
}

// headersOf reads a header object. Names are lower-cased; values must be
// strings and lose any control characters, so that nothing a policy builds
// from token contents can split a header.
func headersOf(t *ast.Term, field string) (map[string]string, error) {
	if t == nil {
		return nil, nil
	}
	o, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("decision.%s is not an object", field)
	}
	if o.Len() == 0 {
		return nil, nil
	}
	out := make(map[string]string, o.Len())
	err := o.Iter(func(k, v *ast.Term) error {
		name, ok1 := stringOf(k)
		val, ok2 := stringOf(v)
		if !ok1 || !ok2 || !validHeaderName(name) {
			return fmt.Errorf("decision.%s has a non-string or invalid entry", field)
		}
		out[strings.ToLower(name)] = stripControl(val)
		return nil
	})
	return out, err
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func stripControl(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// effectsOf reads decision.effects strictly: an effect Go does not know is
// an error, never silently skipped.
func effectsOf(t *ast.Term) ([]Effect, error) {
	if t == nil {
		return nil, nil
	}
	var elems []*ast.Term
	switch c := t.Value.(type) {
	case *ast.Array:
		for i := range c.Len() {
			elems = append(elems, c.Elem(i))
		}
	case ast.Set:
		s := c.Sorted()
		for i := range s.Len() {
			elems = append(elems, s.Elem(i))
		}
	default:
		return nil, errors.New("decision.effects is not an array")
	}
	out := make([]Effect, 0, len(elems))
	for _, e := range elems {
		o, ok := e.Value.(ast.Object)
		if !ok || o.Len() != 1 || o.Get(keyRevoke) == nil {
			return nil, errors.New("decision.effects has an entry that is not {\"revoke\": {...}}")
		}
		rv, ok := o.Get(keyRevoke).Value.(ast.Object)
		if !ok {
			return nil, errors.New("decision.effects revoke is not an object")
		}
		var r RevokeEffect
		var ok1, ok2, ok3 bool
		r.Kind, ok1 = stringOf(rv.Get(keyKind))
		r.Issuer, ok2 = stringOf(rv.Get(keyIss))
		r.Value, ok3 = stringOf(rv.Get(keyValue))
		r.Reason, _ = stringOf(rv.Get(keyReason))
		if !ok1 || !ok2 || !ok3 || r.Issuer == "" || r.Value == "" {
			return nil, errors.New("decision.effects revoke needs string kind, iss and value")
		}
		out = append(out, Effect{Revoke: &r})
	}
	return out, nil
}
