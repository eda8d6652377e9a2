package decision

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// gatedPolicy allows once its gate is closed. Each evaluation reports on
// entered; one that sees its context end first returns the error OPA
// returns for a canceled query, which does not wrap the context's error.
type gatedPolicy struct {
	entered chan struct{}
	gate    chan struct{}
}

func newGatedPolicy() *gatedPolicy {
	return &gatedPolicy{entered: make(chan struct{}, 16), gate: make(chan struct{})}
}

func (g *gatedPolicy) Eval(ctx context.Context, _ ast.Value, _ time.Time) (policy.Result, string, error) {
	g.entered <- struct{}{}
	select {
	case <-g.gate:
		return policy.Result{Allow: true, Status: 200}, "rev", nil
	case <-ctx.Done():
		return policy.Result{}, "rev", errors.New("eval_cancel_error: caller cancelled query execution")
	}
}

func (*gatedPolicy) Settings() policy.Settings { return policy.Settings{} }

func TestAdmission(t *testing.T) {
	type step struct {
		occupy bool // one evaluation holds the only slot while the request is decided
		cancel bool // the caller goes away once the request waits or evaluates
	}
	tests := []struct {
		name    string
		opts    Options
		step    step
		allow   bool
		code    string
		retry   bool
		entered bool // the request's own evaluation ran
	}{
		{
			name: "fail/no slot and no queue: overloaded at once, not policy_error",
			opts: Options{MaxConcurrent: 1, MaxQueue: 0, Timeout: time.Hour},
			step: step{occupy: true}, code: CodeOverloaded, retry: true,
		},
		{
			name: "fail/the wait in the queue runs out: overloaded",
			opts: Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: 10 * time.Millisecond, Timeout: time.Hour},
			step: step{occupy: true}, code: CodeOverloaded, retry: true,
		},
		{
			name: "fail/the decision deadline passes while queued: overloaded",
			opts: Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Hour, Timeout: 20 * time.Millisecond},
			step: step{occupy: true}, code: CodeOverloaded, retry: true,
		},
		{
			name: "fail/the decision deadline passes during evaluation: overloaded, not policy_error",
			opts: Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Hour, Timeout: 20 * time.Millisecond},
			code: CodeOverloaded, retry: true, entered: true,
		},
		{
			name: "fail/the decision deadline passes during evaluation without admission: overloaded",
			opts: Options{Timeout: 20 * time.Millisecond},
			code: CodeOverloaded, retry: true, entered: true,
		},
		{
			name: "fail/the caller goes away while queued: canceled",
			opts: Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Hour, Timeout: time.Hour},
			step: step{occupy: true, cancel: true}, code: CodeCanceled,
		},
		{
			name: "fail/the caller goes away during evaluation: canceled, not policy_error",
			opts: Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Hour, Timeout: time.Hour},
			step: step{cancel: true}, code: CodeCanceled, entered: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := newGatedPolicy()
			e := NewEngine(t.Context(), fakeTokens{}, pol, tt.opts)
			req, err := NewRequest(RawRequest{Method: "GET", URL: "https://api.example.com/x"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.step.occupy {
				e.admission.slots <- struct{}{} // another evaluation holds the only slot
				defer e.admission.release()
			}
			// The gate stays closed: an evaluation that gets a turn ends
			// only with its context.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.step.cancel {
				go func() {
					if tt.entered {
						<-pol.entered
					} else {
						for e.AdmissionStats().Waiting == 0 {
							time.Sleep(time.Millisecond)
						}
					}
					cancel()
				}()
			}
			d, err := e.Decide(ctx, req)
			if err != nil {
				t.Fatalf("err = %v, want none: an interrupted decision is not an error", err)
			}
			if d.Allow != tt.allow || d.Status != 503 || len(d.Reasons) != 1 || d.Reasons[0].Code != tt.code {
				t.Fatalf("allow=%v status=%d reasons=%v, want a 503 deny with %s", d.Allow, d.Status, d.Reasons, tt.code)
			}
			if got := d.Headers["Retry-After"]; (got == RetryAfter) != tt.retry {
				t.Errorf("Retry-After = %q, want it set: %v", got, tt.retry)
			}
			if !tt.step.cancel || !tt.entered {
				select {
				case <-pol.entered:
					if !tt.entered {
						t.Error("the refused request was evaluated")
					}
				default:
					if tt.entered {
						t.Error("the request was not evaluated")
					}
				}
			}
			if s := e.AdmissionStats(); s.Waiting != 0 || s.Running != map[bool]int{true: 1}[tt.step.occupy] {
				t.Errorf("admission after the decision = %+v, want only the occupied slot taken", s)
			}
		})
	}
}

func TestAdmissionGivesAFreedSlotToTheOneWaiting(t *testing.T) {
	pol := newGatedPolicy()
	e := NewEngine(t.Context(), fakeTokens{}, pol, Options{MaxConcurrent: 1, MaxQueue: 1, MaxQueueWait: time.Hour, Timeout: time.Hour})
	req, err := NewRequest(RawRequest{Method: "GET", URL: "https://api.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan *Decision, 1)
	go func() { d, _ := e.Decide(t.Context(), req); first <- d }()
	<-pol.entered
	second := make(chan *Decision, 1)
	go func() { d, _ := e.Decide(t.Context(), req); second <- d }()
	for e.AdmissionStats().Waiting == 0 {
		time.Sleep(time.Millisecond)
	}
	// The queue (1) is full: a third is refused at once.
	if d, _ := e.Decide(t.Context(), req); d.Allow || d.Reasons[0].Code != CodeOverloaded {
		t.Fatalf("third request: allow=%v reasons=%v, want overloaded", d.Allow, d.Reasons)
	}
	close(pol.gate)
	for _, c := range []chan *Decision{first, second} {
		if d := <-c; !d.Allow {
			t.Errorf("allow=false reasons=%v, want an allow", d.Reasons)
		}
	}
}

// endpointPolicy is a gatedPolicy whose settings name a token endpoint.
type endpointPolicy struct{ *gatedPolicy }

func (endpointPolicy) Settings() policy.Settings {
	return policy.Settings{TokenEndpoint: "https://as.example.com/token", RefreshMaxAge: time.Hour}
}

// refreshTokens verifies every refresh token as one of alice's.
type refreshTokens struct{ fakeTokens }

func (refreshTokens) VerifyRefresh(_ context.Context, raw string) (*token.Token, error) {
	return &token.Token{Hash: token.HashToken(raw), Source: token.SourceJWT, Issuer: "https://as.example.com", Subject: "alice",
		JTI: "rt-1", Claims: ast.NewObject(), ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// A refresh token presented while the decision point is overloaded is
// answered 503 before its use is written: the client's retry (which
// Retry-After asks for) is its first use, not reuse.
func TestOverloadedRefreshWritesNothing(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol := endpointPolicy{newGatedPolicy()}
	e := NewEngine(t.Context(), refreshTokens{}, pol, Options{MaxConcurrent: 1, MaxQueue: 0, Timeout: time.Hour, State: st})
	req, err := NewRequest(RawRequest{Method: "POST", URL: "https://as.example.com/token", RemoteIP: "203.0.113.7",
		Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.admission.slots <- struct{}{} // another evaluation holds the only slot
	d, err := e.Decide(t.Context(), req)
	e.admission.release()
	if err != nil || d.Allow || d.Status != 503 || len(d.Reasons) != 1 || d.Reasons[0].Code != CodeOverloaded {
		t.Fatalf("decision = %+v, %v; want a 503 overloaded deny", d, err)
	}
	tok, _ := refreshTokens{}.VerifyRefresh(t.Context(), "rt")
	fam := store.Family{ID: familyID(tok), Issuer: tok.Issuer, Subject: tok.Subject, ExpiresAt: time.Now().Add(time.Hour)}
	if _, err := st.UseRefreshTokenFrom(t.Context(), fam, tok.Hash, store.Presentation{}); err != nil {
		t.Fatalf("after the overloaded answer, the refresh token's first use: %v, want none (nothing was written)", err)
	}
}

// lateState writes a refresh token's use and then returns only once the
// caller's deadline has passed: the use is on disk, the decision's time
// is up.
type lateState struct{ *store.Bolt }

func (s lateState) UseRefreshTokenFrom(ctx context.Context, f store.Family, hash string, p store.Presentation) (store.Family, error) {
	fam, err := s.Bolt.UseRefreshTokenFrom(context.WithoutCancel(ctx), f, hash, p)
	<-ctx.Done()
	return fam, err
}

// A refresh-token decision whose deadline passes after the token's use was
// written completes (the policy's answer, not 503 overloaded): a retry
// would be the token's reuse, which revokes the session.
func TestRefreshDecisionCompletesOnceItsUseIsWritten(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pol := endpointPolicy{newGatedPolicy()}
	close(pol.gate)
	e := NewEngine(t.Context(), refreshTokens{}, pol, Options{MaxConcurrent: 1, Timeout: 20 * time.Millisecond, State: lateState{st}})
	req, err := NewRequest(RawRequest{Method: "POST", URL: "https://as.example.com/token", RemoteIP: "203.0.113.7",
		Form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt"}}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(t.Context(), req)
	if err != nil || !d.Allow || d.Status != 200 {
		t.Fatalf("decision = allow %v, status %d, reasons %v, err %v; want the policy's allow", d.Allow, d.Status, d.Reasons, err)
	}
	// The use was written once: the token presented again is reuse.
	tok, _ := refreshTokens{}.VerifyRefresh(t.Context(), "rt")
	fam := store.Family{ID: familyID(tok), Issuer: tok.Issuer, Subject: tok.Subject, ExpiresAt: time.Now().Add(time.Hour)}
	if _, err := st.UseRefreshTokenFrom(t.Context(), fam, tok.Hash, store.Presentation{}); !errors.Is(err, store.ErrRefreshReuse) {
		t.Errorf("the token presented again: %v, want reuse (its use was written)", err)
	}
}
