package decision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/token"
)

// proofResult is what the policy learns about the DPoP proof (input.dpop).
type proofResult struct {
	present bool
	valid   bool
	jkt     string
	err     *dpop.Error
	// nonce is a fresh server nonce for the client, when nonces are on and
	// DPoP is involved in the request.
	nonce string
}

// verifyProof verifies the DPoP proof of a request whose access token
// verified. A proof next to an invalid token is not verified (the request
// is denied for its token, and garbage never burns a proof's jti). A store
// failure of the replay check is an error: the decision fails closed.
func (e *Engine) verifyProof(ctx context.Context, req *Request, cred credential, tok *token.Token, now time.Time, run *run) (proofResult, error) {
	proofs := req.Headers["dpop"]
	r := proofResult{present: len(proofs) > 0}
	involved := r.present || cred.scheme == "dpop" || (tok != nil && tok.Confirmation.JKT != "")
	if e.nonces != nil && involved {
		r.nonce = e.nonces.Issue(now)
	}
	if !r.present || tok == nil || e.proofs == nil {
		return r, nil
	}
	dr := dpop.Request{Proofs: proofs, Method: req.Method, URL: req.URL, AccessToken: cred.raw}
	var (
		p   *dpop.Proof
		err error
	)
	if run.explaining() {
		p, err = e.checkProof(ctx, dr, run)
	} else {
		p, err = e.proofs.Verify(ctx, dr)
	}
	var de *dpop.Error
	switch {
	case err == nil:
		r.valid, r.jkt = true, p.JKT
	case errors.As(err, &de):
		r.err = de
	default:
		return r, fmt.Errorf("verify DPoP proof: %w", err)
	}
	return r, nil
}

// checkProof checks the proof as Verify does without spending its jti, and
// notes what spending would have found.
func (e *Engine) checkProof(ctx context.Context, dr dpop.Request, run *run) (*dpop.Proof, error) {
	pc, ok := e.proofs.(proofChecker)
	if !ok {
		return nil, fmt.Errorf("%w: the DPoP verifier cannot check a proof without spending it", ErrExplainUnsupported)
	}
	p, err := pc.Check(ctx, dr)
	var de *dpop.Error
	switch {
	case err == nil:
		run.writes(WriteDPoPJTI, "the proof's jti was not spent; it had not been spent before")
	case errors.As(err, &de) && de.Code == dpop.CodeReplayed:
		run.writes(WriteDPoPJTI, "the proof's jti was spent before: the proof is a replay")
	case errors.Is(err, dpop.ErrCheckUnsupported):
		return nil, fmt.Errorf("%w: %w", ErrExplainUnsupported, err)
	}
	return p, err
}
