package decision

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

type fakeTokens struct{}

func (fakeTokens) Verify(_ context.Context, raw string) (*token.Token, error) {
	return &token.Token{Hash: token.HashToken(raw), Source: token.SourceJWT, Issuer: "https://as.example.com", Subject: "alice", Claims: ast.NewObject(),
		ExpiresAt: time.Now().Add(time.Hour), Confirmation: token.Confirmation{JKT: "jkt"}}, nil
}

func (fakeTokens) Recheck(*token.Token) *token.Error { return nil }

func (fakeTokens) VerifyRefresh(context.Context, string) (*token.Token, error) {
	return nil, errors.New("no refresh tokens here")
}

// fakeProofs stands for the DPoP verifier and its replay check, which the
// shared store answers.
type fakeProofs func(ctx context.Context) (*dpop.Proof, error)

func (f fakeProofs) Verify(ctx context.Context, _ dpop.Request) (*dpop.Proof, error) { return f(ctx) }

// fakePolicy allows, unless eval says otherwise; eval may note checks as
// the built-ins' store would.
type fakePolicy func(ctx context.Context) error

func (f fakePolicy) Eval(ctx context.Context, _ ast.Value, _ time.Time) (policy.Result, string, error) {
	if err := f(ctx); err != nil {
		return policy.Result{}, "rev", err
	}
	return policy.Result{Allow: true, Status: 200}, "rev", nil
}

func (fakePolicy) Settings() policy.Settings { return policy.Settings{} }

func TestSharedStateUnavailable(t *testing.T) {
	validProof := func(context.Context) (*dpop.Proof, error) { return &dpop.Proof{JKT: "jkt"}, nil }
	allowPolicy := func(context.Context) error { return nil }
	tests := []struct {
		name         string
		proofs       fakeProofs
		eval         fakePolicy
		allow        bool
		status       int
		code         string // the reason of a deny, or the warning of an allow
		wantErr      bool
		wantWarnings int
	}{
		{
			name: "fail/replay check unavailable and configured to deny",
			proofs: func(ctx context.Context) (*dpop.Proof, error) {
				store.NoteUnavailable(ctx, store.CheckReplay, false)
				return nil, fmt.Errorf("dpop: replay check: %w", store.ErrUnavailable)
			},
			eval: allowPolicy, status: 503, code: CodeStateUnavailable,
		},
		{
			name: "ok/replay check let through with a warning",
			proofs: func(ctx context.Context) (*dpop.Proof, error) {
				store.NoteUnavailable(ctx, store.CheckReplay, true)
				return &dpop.Proof{JKT: "jkt"}, nil
			},
			eval: allowPolicy, allow: true, status: 200, code: CodeStateUnavailable, wantWarnings: 1,
		},
		{
			name:   "fail/fingerprint lookup unavailable and configured to deny",
			proofs: validProof,
			eval: func(ctx context.Context) error {
				store.NoteUnavailable(ctx, store.CheckFingerprint, false)
				return errors.New("eval_builtin_error: pdp.last_seen: fingerprint lookup: store: shared state unavailable")
			},
			status: 503, code: CodeStateUnavailable,
		},
		{
			name:   "ok/fingerprint guardrail skipped with one warning however often it asked",
			proofs: validProof,
			eval: func(ctx context.Context) error {
				store.NoteUnavailable(ctx, store.CheckFingerprint, true)
				store.NoteUnavailable(ctx, store.CheckFingerprint, true)
				return nil
			},
			allow: true, status: 200, code: CodeStateUnavailable, wantWarnings: 1,
		},
		{
			name:   "fail/any other error stays a policy_error",
			proofs: validProof,
			eval:   func(context.Context) error { return errors.New("boom") },
			status: 500, code: CodePolicyError, wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEngine(t.Context(), fakeTokens{}, tt.eval, Options{Proofs: tt.proofs})
			req, err := NewRequest(RawRequest{Method: "GET", URL: "https://api.example.com/x",
				Headers: map[string][]string{"authorization": {"DPoP tok"}, "dpop": {"proof"}}})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(t.Context(), req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if d.Allow != tt.allow || d.Status != tt.status {
				t.Fatalf("allow=%v status=%d reasons=%v, want allow=%v status=%d", d.Allow, d.Status, d.Reasons, tt.allow, tt.status)
			}
			got := d.Reasons
			if tt.allow {
				got = d.Warnings
				if len(got) != tt.wantWarnings {
					t.Fatalf("warnings = %v, want %d", got, tt.wantWarnings)
				}
			}
			if len(got) == 0 || got[0].Code != tt.code {
				t.Fatalf("codes = %v, want %s", got, tt.code)
			}
		})
	}
}
