package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/open-policy-agent/opa/v1/ast"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/extauthz"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/token"
)

// stalledPolicy is a policy whose evaluations do not end until their
// context does (as a saturated CPU or a slow evaluation looks from the
// outside), returning the error OPA gives a canceled query. It counts the
// evaluations that started.
type stalledPolicy struct{ started atomic.Int64 }

func (p *stalledPolicy) Eval(ctx context.Context, _ ast.Value, _ time.Time) (policy.Result, string, error) {
	p.started.Add(1)
	<-ctx.Done()
	return policy.Result{}, "rev", errors.New("eval_cancel_error: caller cancelled query execution")
}

func (*stalledPolicy) Settings() policy.Settings { return policy.Settings{} }

type noTokens struct{}

func (noTokens) Verify(context.Context, string) (*token.Token, error) {
	return nil, errors.New("no tokens here")
}

func (noTokens) Recheck(*token.Token) *token.Error { return nil }

func (noTokens) VerifyRefresh(context.Context, string) (*token.Token, error) {
	return nil, errors.New("no tokens here")
}

// overloadBed serves one engine on every transport, counted by one
// metrics registry.
type overloadBed struct {
	engine  *decision.Engine
	policy  *stalledPolicy
	metrics *metrics.Metrics
	http    *httptest.Server
	ext     authv3.AuthorizationClient
}

func newOverloadBed(t *testing.T, opts decision.Options) *overloadBed {
	t.Helper()
	b := &overloadBed{policy: &stalledPolicy{}, metrics: metrics.New(metrics.Options{})}
	opts.Observer = b.metrics
	b.engine = decision.NewEngine(t.Context(), noTokens{}, b.policy, opts)
	b.http = httptest.NewServer(httpapi.New(httpapi.Options{
		Decider: b.engine, Metrics: b.metrics,
		ForwardAuth: &httpapi.ForwardAuth{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	}))
	t.Cleanup(b.http.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := extauthz.NewServer(b.engine, extauthz.Options{Metrics: b.metrics, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	b.ext = authv3.NewAuthorizationClient(conn)
	return b
}

// answer is what a gateway gets from one transport.
type answer struct {
	status     int // the HTTP status the client is to get
	reasons    []string
	retryAfter string
	grpcErr    error
	body       []byte // of decide and forward-auth
}

// ask asks transport about GET https://api.example.com/x.
func (b *overloadBed) ask(ctx context.Context, t *testing.T, transport string) answer {
	t.Helper()
	switch transport {
	case "decide":
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.http.URL+"/v1/decide",
			strings.NewReader(`{"request":{"method":"GET","url":"https://api.example.com/x","headers":{}}}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{grpcErr: err}
		}
		defer resp.Body.Close()
		var d struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &d) != nil {
			return answer{status: resp.StatusCode}
		}
		a := answer{status: d.Status, retryAfter: d.Headers["Retry-After"], body: raw}
		for _, r := range d.Reasons {
			a.reasons = append(a.reasons, r.Code)
		}
		return a
	case "forward-auth":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.http.URL+"/v1/forward-auth", nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-Uri", "/x")
		req.Header.Set("X-Original-Proto", "https")
		req.Host = "api.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{grpcErr: err}
		}
		defer resp.Body.Close()
		var body struct {
			Reasons []string `json:"reasons"`
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &body)
		return answer{status: resp.StatusCode, reasons: body.Reasons, retryAfter: resp.Header.Get("Retry-After"), body: raw}
	case "ext_authz":
		resp, err := b.ext.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Scheme: "https", Host: "api.example.com", Path: "/x", Protocol: "HTTP/1.1",
				Headers: map[string]string{":method": "GET", ":path": "/x", ":authority": "api.example.com"},
			}},
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 1}}}}},
		}})
		if err != nil {
			return answer{grpcErr: err}
		}
		denied := resp.GetDeniedResponse()
		if denied == nil {
			return answer{status: 200}
		}
		a := answer{status: int(denied.GetStatus().GetCode())}
		var body struct {
			Reasons []string `json:"reasons"`
		}
		_ = json.Unmarshal([]byte(denied.GetBody()), &body)
		a.reasons = body.Reasons
		for _, h := range denied.GetHeaders() {
			if h.GetHeader().GetKey() == "retry-after" {
				a.retryAfter = h.GetHeader().GetValue()
			}
		}
		return a
	}
	t.Fatalf("unknown transport %s", transport)
	return answer{}
}

// decisions is pdp_decisions_total summed by reason.
func (b *overloadBed) decisions(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := b.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "pdp_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

var transports = []string{"decide", "forward-auth", "ext_authz"}

// The overloaded answers docs/operations.md quotes.
var overloadGoldens = map[string]string{
	"decide":       docGolden("overload-decide.json", "TestOverloadIsAnOverloadedDenyOnEveryTransport"),
	"forward-auth": docGolden("overload-forward-auth.json", "TestOverloadIsAnOverloadedDenyOnEveryTransport"),
}

func TestOverloadIsAnOverloadedDenyOnEveryTransport(t *testing.T) {
	tests := []struct {
		name string
		opts decision.Options
		// occupy: a decision holds the only evaluation slot meanwhile.
		occupy bool
	}{
		{name: "fail/no slot and no queue: 503 overloaded at once",
			opts: decision.Options{MaxConcurrent: 1, MaxQueue: 0, Timeout: 10 * time.Second}, occupy: true},
		{name: "fail/the wait in the queue runs out: 503 overloaded",
			opts: decision.Options{MaxConcurrent: 1, MaxQueue: 8, MaxQueueWait: 5 * time.Millisecond, Timeout: 10 * time.Second}, occupy: true},
		{name: "fail/the decision deadline passes during evaluation: 503 overloaded, not policy_error",
			opts: decision.Options{MaxConcurrent: 8, MaxQueue: 8, MaxQueueWait: 5 * time.Millisecond, Timeout: 20 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newOverloadBed(t, tt.opts)
			if tt.occupy {
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = b.engine.Decide(ctx, mustRequest(t))
				}()
				t.Cleanup(func() { cancel(); <-done })
				for b.policy.started.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			for _, tr := range transports {
				a := b.ask(t.Context(), t, tr)
				if a.grpcErr != nil || a.status != http.StatusServiceUnavailable || len(a.reasons) != 1 ||
					a.reasons[0] != decision.CodeOverloaded || a.retryAfter != decision.RetryAfter {
					t.Errorf("%s: %+v, want 503, reason overloaded, Retry-After %s", tr, a, decision.RetryAfter)
				}
				if name := overloadGoldens[tr]; name != "" && tt.occupy && tt.opts.MaxQueue == 0 {
					checkDocGolden(t, name, a.body)
				}
			}
			got := b.decisions(t)
			if got[decision.CodeOverloaded] != float64(len(transports)) || got[decision.CodePolicyError] != 0 {
				t.Errorf("pdp_decisions_total by reason = %v, want %d overloaded and no policy_error", got, len(transports))
			}
		})
	}
}

func TestCallerGoneIsCountedAsCanceled(t *testing.T) {
	b := newOverloadBed(t, decision.Options{MaxConcurrent: 8, MaxQueue: 8, MaxQueueWait: time.Second, Timeout: time.Minute})
	for i, tr := range transports {
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			for b.policy.started.Load() <= int64(i) {
				time.Sleep(time.Millisecond)
			}
			cancel() // the client goes away during the evaluation
		}()
		if a := b.ask(ctx, t, tr); a.grpcErr == nil {
			t.Errorf("%s: answered %+v to a caller that went away", tr, a)
		}
		cancel()
	}
	// The server learns of the caller's departure and counts the decision
	// after the client gave up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.decisions(t)
		if got[decision.CodeCanceled] == float64(len(transports)) && got[decision.CodePolicyError] == 0 && got[decision.CodeOverloaded] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pdp_decisions_total by reason = %v, want %d canceled and nothing else", got, len(transports))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustRequest(t *testing.T) *decision.Request {
	t.Helper()
	r, err := decision.NewRequest(decision.RawRequest{Method: "GET", URL: "https://api.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
