package replay

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/route"
)

// Evaluator evaluates the candidate policy; *policy.Engine is the one in
// use.
type Evaluator interface {
	EvalRecorded(ctx context.Context, input ast.Value, now time.Time, ndb topdown.NDBCache) (policy.Result, string, error)
}

// notDecidedByPolicy are the recorded reasons of denies Go made without
// the policy's answer (overload, a caller gone, the shared state
// unavailable): replaying them compares nothing.
var notDecidedByPolicy = map[string]bool{"overloaded": true, "canceled": true, "state_unavailable": true}

// MaxExamples is how many example decision ids a group keeps.
const MaxExamples = 5

// Group names for decisions without a client or a route.
const (
	NoClient = "(none)"
	NoRoute  = "(none)"
)

// Counts are the changed decisions of one group.
type Counts struct {
	NewDenials     int `json:"new_denials"`
	NewAllows      int `json:"new_allows"`
	ChangedReasons int `json:"changed_reasons"`
}

// Total is the number of changed decisions counted.
func (c *Counts) Total() int { return c.NewDenials + c.NewAllows + c.ChangedReasons }

// Examples are up to MaxExamples decision ids per group: per kind of
// change, and per reason code, client and route.
type Examples struct {
	NewDenials     []string            `json:"new_denials"`
	NewAllows      []string            `json:"new_allows"`
	ChangedReasons []string            `json:"changed_reasons"`
	ByReason       map[string][]string `json:"by_reason"`
	ByClient       map[string][]string `json:"by_client"`
	ByRoute        map[string][]string `json:"by_route"`
}

// Summary is what a replay found. Its JSON is `pdp replay --format
// json`'s output.
type Summary struct {
	// Decisions read (each decision id once).
	Decisions int `json:"decisions"`
	// Evaluated: re-evaluated against the candidate. The others carry no
	// input (the request was refused before one was built) or were denied
	// without the policy (overloaded, canceled, state_unavailable).
	Evaluated      int `json:"evaluated"`
	Unchanged      int `json:"unchanged"`
	NewDenials     int `json:"new_denials"`
	NewAllows      int `json:"new_allows"`
	ChangedReasons int `json:"changed_reasons"`
	// ByReason counts changed decisions by reason code: a new denial by
	// the candidate's reasons, a new allow by the recorded ones, changed
	// reasons by the codes added or dropped.
	ByReason map[string]*Counts `json:"by_reason"`
	// ByClient and ByRoute count them by the token's client and by the
	// candidate's route (data.pdp.routes) the request matches.
	ByClient map[string]*Counts `json:"by_client"`
	ByRoute  map[string]*Counts `json:"by_route"`
	Examples Examples           `json:"examples"`
}

// Change is what became of one decision.
type Change int

const (
	Skipped Change = iota
	Unchanged
	NewDenial
	NewAllow
	ChangedReasons
)

// Replayer re-evaluates decisions one at a time and adds them up. It is
// not safe for concurrent use.
type Replayer struct {
	eval Evaluator
	// recordedAnswers: the pdp.* built-ins answer as recorded.
	recordedAnswers bool
	routes          *ast.Array
	table           *route.Table
	// seen holds a digest of every decision id read: 16 bytes each.
	seen map[[16]byte]struct{}
	sum  Summary
}

// New returns a Replayer of the candidate eval. With recordedAnswers,
// the pdp.* built-ins answer as the event recorded (a call the event has
// no answer for reads the store the built-ins are set to); otherwise they
// read that store. data is the candidate's data document, for its routes.
func New(eval Evaluator, data map[string]any, recordedAnswers bool) *Replayer {
	r := &Replayer{eval: eval, recordedAnswers: recordedAnswers, seen: map[[16]byte]struct{}{}}
	r.sum = Summary{
		ByReason: map[string]*Counts{}, ByClient: map[string]*Counts{}, ByRoute: map[string]*Counts{},
		Examples: Examples{
			NewDenials: []string{}, NewAllows: []string{}, ChangedReasons: []string{},
			ByReason: map[string][]string{}, ByClient: map[string][]string{}, ByRoute: map[string][]string{},
		},
	}
	if pdp, ok := data["pdp"].(map[string]any); ok {
		if v, err := ast.InterfaceToValue(pdp["routes"]); err == nil {
			if arr, ok := v.(*ast.Array); ok {
				if t, err := route.Compile(arr); err == nil {
					r.routes, r.table = arr, t
				}
			}
		}
	}
	return r
}

// Replay re-evaluates d and counts it; a decision id met before is
// ignored. The error is the context's: a candidate's evaluation error is
// the deny with policy_error the server would answer.
func (r *Replayer) Replay(ctx context.Context, d *Decision) (Change, error) {
	sum := sha256.Sum256([]byte(d.ID))
	id := [16]byte(sum[:16])
	if _, dup := r.seen[id]; dup {
		return Skipped, nil
	}
	r.seen[id] = struct{}{}
	r.sum.Decisions++
	if d.Input == nil || slices.ContainsFunc(d.Reasons, func(c string) bool { return notDecidedByPolicy[c] }) {
		return Skipped, nil
	}
	var ndb topdown.NDBCache
	if r.recordedAnswers {
		ndb = topdown.NDBCache{}
		for name, obj := range d.Answers {
			ndb[name] = obj.Copy()
		}
	}
	res, _, err := r.eval.EvalRecorded(ctx, d.Input, d.Now, ndb)
	if ctx.Err() != nil {
		return Skipped, ctx.Err()
	}
	allow, codes := res.Allow, reasonCodes(res.Reasons)
	if err != nil {
		allow, codes = false, []string{"policy_error"}
	}
	r.sum.Evaluated++
	change := Unchanged
	var groupCodes []string
	switch {
	case d.Allow && !allow:
		change, groupCodes = NewDenial, codes
	case !d.Allow && allow:
		change, groupCodes = NewAllow, d.Reasons
	case !d.Allow && !slices.Equal(d.Reasons, codes):
		change, groupCodes = ChangedReasons, symmetricDifference(d.Reasons, codes)
	}
	if change == Unchanged {
		r.sum.Unchanged++
		return change, nil
	}
	switch change {
	case NewDenial:
		r.sum.NewDenials++
		r.sum.Examples.NewDenials = example(r.sum.Examples.NewDenials, d.ID)
	case NewAllow:
		r.sum.NewAllows++
		r.sum.Examples.NewAllows = example(r.sum.Examples.NewAllows, d.ID)
	case ChangedReasons:
		r.sum.ChangedReasons++
		r.sum.Examples.ChangedReasons = example(r.sum.Examples.ChangedReasons, d.ID)
	}
	for _, c := range groupCodes {
		count(r.sum.ByReason, r.sum.Examples.ByReason, c, change, d.ID)
	}
	client := d.ClientID
	if client == "" {
		client = NoClient
	}
	count(r.sum.ByClient, r.sum.Examples.ByClient, client, change, d.ID)
	count(r.sum.ByRoute, r.sum.Examples.ByRoute, r.routeOf(d.Input), change, d.ID)
	return change, nil
}

// Summary is what was counted so far.
func (r *Replayer) Summary() *Summary { return &r.sum }

// routeOf names the candidate's route the recorded request matches
// (input.request's method, host and path, as lib/route.rego matches
// them).
func (r *Replayer) routeOf(input ast.Value) string {
	if r.table == nil {
		return NoRoute
	}
	obj, _ := input.(ast.Object)
	if obj == nil {
		return NoRoute
	}
	t := obj.Get(ast.InternedTerm("request"))
	if t == nil {
		return NoRoute
	}
	req, _ := t.Value.(ast.Object)
	if req == nil {
		return NoRoute
	}
	str := func(k string) string {
		if t := req.Get(ast.InternedTerm(k)); t != nil {
			if s, ok := t.Value.(ast.String); ok {
				return string(s)
			}
		}
		return ""
	}
	i, ok, err := r.table.Match(str("method"), str("host"), str("path"))
	if err != nil || !ok {
		return NoRoute
	}
	if obj, ok := r.routes.Elem(i).Value.(ast.Object); ok {
		if n := obj.Get(ast.InternedTerm("name")); n != nil {
			if s, ok := n.Value.(ast.String); ok && s != "" {
				return string(s)
			}
		}
	}
	return fmt.Sprintf("routes[%d]", i)
}

func count(groups map[string]*Counts, examples map[string][]string, key string, change Change, id string) {
	c := groups[key]
	if c == nil {
		c = &Counts{}
		groups[key] = c
	}
	switch change {
	case NewDenial:
		c.NewDenials++
	case NewAllow:
		c.NewAllows++
	case ChangedReasons:
		c.ChangedReasons++
	}
	examples[key] = example(examples[key], id)
}

func example(ids []string, id string) []string {
	if len(ids) >= MaxExamples {
		return ids
	}
	return append(ids, id)
}

func reasonCodes(rs []policy.Reason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Code)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// symmetricDifference of two sorted lists.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
