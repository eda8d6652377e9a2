package decision

import (
	"context"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
)

// spendingProofs stands for a DPoP verifier whose replay check (a store
// commit) holds until released; each call reports on started.
type spendingProofs struct {
	started chan struct{}
	release chan struct{}
}

func (p spendingProofs) Verify(ctx context.Context, _ dpop.Request) (*dpop.Proof, error) {
	p.started <- struct{}{}
	select {
	case <-p.release:
		return &dpop.Proof{JKT: "jkt"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func dpopRequest(t *testing.T) *Request {
	t.Helper()
	req, err := NewRequest(RawRequest{Method: "GET", URL: "https://api.example.com/x",
		Headers: map[string][]string{"authorization": {"DPoP tok"}, "dpop": {"proof"}}})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Beyond MaxActive, a decision waits its turn before any work of its own
// (here its proof's replay check does not start) and gets the slot the
// first one gives back; a decision evaluating the policy holds no slot.
func TestGateLetsMaxActiveDecisionsWorkAtOnce(t *testing.T) {
	proofs := spendingProofs{started: make(chan struct{}, 4), release: make(chan struct{})}
	pol := newGatedPolicy()
	e := NewEngine(t.Context(), fakeTokens{}, pol, Options{Proofs: proofs, MaxActive: 1, Timeout: time.Hour})
	req := dpopRequest(t)

	first := make(chan *Decision, 1)
	go func() { d, _ := e.Decide(t.Context(), req); first <- d }()
	<-proofs.started
	second := make(chan *Decision, 1)
	go func() { d, _ := e.Decide(t.Context(), req); second <- d }()
	waitFor(t, "the second decision to wait at the gate", func() bool { return e.gate.waiting.Load() == 1 })
	select {
	case <-proofs.started:
		t.Fatal("the second decision's replay check started while the first held the only slot")
	default:
	}

	// The first one's spend completes; it leaves the gate to evaluate, and
	// the second takes the slot while the first is still evaluating.
	proofs.release <- struct{}{}
	<-pol.entered
	<-proofs.started
	proofs.release <- struct{}{}
	<-pol.entered
	close(pol.gate)
	for _, c := range []chan *Decision{first, second} {
		if d := <-c; !d.Allow {
			t.Errorf("allow=false reasons=%v, want an allow", d.Reasons)
		}
	}
	if n := len(e.gate.slots); n != 0 {
		t.Errorf("%d slots still taken after both decisions", n)
	}
}

// A decision that cannot get a turn in time is an overloaded deny (503,
// Retry-After), one whose caller goes away while it waits a canceled
// one; neither is a policy_error, and neither keeps a slot.
func TestGateWaitEndsOverloadedOrCanceled(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
		code    string
	}{
		{name: "fail/the decision deadline passes at the gate: overloaded", timeout: 20 * time.Millisecond, code: CodeOverloaded},
		{name: "fail/the caller goes away at the gate: canceled", timeout: time.Hour, cancel: true, code: CodeCanceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pol := newGatedPolicy()
			close(pol.gate)
			e := NewEngine(t.Context(), fakeTokens{}, pol, Options{MaxActive: 1, Timeout: tt.timeout})
			e.gate.slots <- struct{}{} // another decision holds the only slot
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancel {
				go func() {
					waitFor(t, "the decision to wait at the gate", func() bool { return e.gate.waiting.Load() == 1 })
					cancel()
				}()
			}
			d, err := e.Decide(ctx, dpopRequest(t))
			if err != nil {
				t.Fatalf("err = %v, want none", err)
			}
			if d.Allow || d.Status != 503 || d.Reasons[0].Code != tt.code {
				t.Fatalf("allow=%v status=%d reasons=%v, want a 503 %s", d.Allow, d.Status, d.Reasons, tt.code)
			}
			e.gate.leave()
			if n, w := len(e.gate.slots), e.gate.waiting.Load(); n != 0 || w != 0 {
				t.Errorf("slots taken %d, waiting %d after the decision; want none", n, w)
			}
		})
	}
}
