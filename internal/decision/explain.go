package decision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
)

// Explaining a decision.
//
// Explain runs the pipeline of Decide on the same request, with the same
// token verification, DPoP proof checks, input and policy, but changes
// nothing. Every write of the decide path goes through one switch, the
// run's writes method:
//
//   - the DPoP proof's jti is not spent: whether it was spent already is
//     only read (a spent one is the same dpop_replayed error);
//   - a refresh token's use is not recorded: whether it was presented
//     before is only read (its family found by its hash is reuse);
//   - the effects the policy asks for (refresh-reuse revocations) are not
//     written;
//   - no bearer-token sighting is recorded;
//   - the decision cache is neither read from nor written to.
//
// Each write left undone is listed in the answer (Unwritten), so that the
// caller sees what /v1/decide would have written.

// Writes that Explain leaves undone (Unwritten.Write).
const (
	WriteDPoPJTI      = "dpop_jti"
	WriteRefreshUse   = "refresh_token_use"
	WriteRevocation   = "revocation"
	WriteSighting     = "sighting"
	WriteDecisionKept = "decision_cache"
)

// Unwritten is one write /v1/decide would have made for the request, and
// what explaining found instead.
type Unwritten struct {
	Write  string `json:"write"`
	Detail string `json:"detail"`
}

// Explained is an explained decision: the decision /v1/decide would have
// made, what each guardrail compared, and the writes left undone.
type Explained struct {
	Decision    *Decision
	Explanation []policy.Explanation
	Unwritten   []Unwritten
}

// PolicyExplainer evaluates the decision and its explanation with one
// policy version; *policy.Engine is the one in use.
type PolicyExplainer interface {
	Explain(ctx context.Context, input ast.Value, now time.Time) (policy.Result, string, []policy.Explanation, error)
}

// proofChecker checks a DPoP proof without spending it (*dpop.Verifier).
type proofChecker interface {
	Check(ctx context.Context, r dpop.Request) (*dpop.Proof, error)
}

// familyFinder finds a refresh token's family by its hash, reading only
// (store.Families).
type familyFinder interface {
	FindFamily(ctx context.Context, tokenHash string) (store.Family, error)
}

// ErrExplainUnsupported is Explain's error when a part of the pipeline
// cannot answer without writing, or the policy cannot explain.
var ErrExplainUnsupported = errors.New("this decision cannot be explained without side effects")

// run is one pass through the pipeline: nil for a decision, whose writes
// happen; an explanation collects the writes it leaves undone instead.
type run struct {
	unwritten   []Unwritten
	explanation []policy.Explanation
}

// writes is the one switch of every write on the decide path: it reports
// whether the write may happen (always, for a decision) and otherwise
// notes it, with what was found instead.
func (r *run) writes(write, detail string) bool {
	if r == nil {
		return true
	}
	r.unwritten = append(r.unwritten, Unwritten{Write: write, Detail: detail})
	return false
}

// explaining reports whether the run is an explanation.
func (r *run) explaining() bool { return r != nil }

// Explain answers what Decide would for req, changing nothing, with the
// explanation of every guardrail that ran. The decision carries Explain,
// so that its decision-log entry says it was an explanation.
func (e *Engine) Explain(ctx context.Context, req *Request) (*Explained, error) {
	if _, ok := e.policy.(PolicyExplainer); !ok {
		return nil, fmt.Errorf("%w: the policy engine cannot explain", ErrExplainUnsupported)
	}
	r := &run{}
	d, err := e.decide(ctx, req, r)
	if d != nil {
		d.Explain = true
	}
	if r.explanation == nil {
		r.explanation = []policy.Explanation{}
	}
	if r.unwritten == nil {
		r.unwritten = []Unwritten{}
	}
	return &Explained{Decision: d, Explanation: r.explanation, Unwritten: r.unwritten}, err
}
