// Package extauthz is tokenguard's Envoy external authorization server:
// envoy.service.auth.v3.Authorization/Check over gRPC (Envoy's ext_authz
// filter, Istio's CUSTOM authorization), beside the standard gRPC health
// service. Like httpapi, it only translates: a CheckRequest's attributes
// into a decision.Request, and the Decision back into a CheckResponse.
//
// Every answer is a CheckResponse, never a gRPC error: a deny, a request it
// cannot read and a decision that failed are all a denied response with a
// non-OK status, which Envoy enforces whatever its failure_mode_allow says.
package extauthz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
)

// Defaults of Options.
const (
	DefaultMaxRecvMsgSize = 1 << 20
	DefaultHealthInterval = time.Second
	DefaultDrainTimeout   = 15 * time.Second
)

// GatewayMetadata is the gRPC metadata key of the shared gateway credential
// (Envoy's grpc_service.initial_metadata). Authorization belongs to the
// request being decided, so the credential has a header of its own.
const GatewayMetadata = "x-tokenguard-gateway"

// CodeGatewayUnauthenticated is the reason of a check from a caller that is
// not an authenticated gateway.
const CodeGatewayUnauthenticated = "gateway_unauthenticated"

// Decider makes decisions; *decision.Engine is the one in use.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*decision.Decision, error)
}

// DecisionLogger writes decision-log entries; *decisionlog.Logger is the
// one in use.
type DecisionLogger interface {
	Log(ctx context.Context, e decisionlog.Entry)
}

// DecisionMetrics counts decisions; *metrics.Metrics is the one in use.
type DecisionMetrics interface {
	ObserveDecision(dec *decision.Decision, err error, elapsed time.Duration)
	ObserveRejected(status int)
}

// Options configure a Server. The zero value serves plaintext gRPC to any
// caller, which is right only where nothing but Envoy can reach the
// listener (a sidecar on loopback).
type Options struct {
	// Logger receives decision failures; never a token or a proof.
	Logger *slog.Logger
	// Ready is the readiness the health service reports (nil error:
	// SERVING). Nil means always ready.
	Ready func() error
	// DecisionLog, when set, receives one entry per decision.
	DecisionLog DecisionLogger
	// Metrics, when set, counts decisions and refused checks.
	Metrics DecisionMetrics

	// TLS, when set, makes the listener speak TLS. With ClientCAs and a
	// ClientAuth that verifies, a verified client certificate authenticates
	// the gateway.
	TLS *tls.Config
	// Credential, when set, is a shared gateway credential Envoy sends as
	// GatewayMetadata; a check without it (or a verified client
	// certificate) is denied.
	Credential string

	// MaxRecvMsgSize bounds one CheckRequest (DefaultMaxRecvMsgSize).
	MaxRecvMsgSize int
	// MaxBodyBytes bounds the form body read from a CheckRequest
	// (decision.MaxFormBytes); Envoy's with_request_body.max_request_bytes
	// should not be larger.
	MaxBodyBytes int
	// HealthInterval is how often a health Watch re-reads Ready
	// (DefaultHealthInterval).
	HealthInterval time.Duration
	// DrainTimeout bounds the graceful stop of Serve (DefaultDrainTimeout).
	DrainTimeout time.Duration
}

// Server answers Envoy's ext_authz checks. It is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	decider Decider
	opts    Options
	digest  [32]byte
	health  *healthService
	// bodyWarning says once that Envoy does not forward form bodies.
	bodyWarning sync.Once
}

// NewServer returns a Server deciding with decider.
func NewServer(decider Decider, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRecvMsgSize <= 0 {
		opts.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = decision.MaxFormBytes
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = DefaultHealthInterval
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	return &Server{
		decider: decider,
		opts:    opts,
		digest:  sha256.Sum256([]byte(opts.Credential)),
		health:  newHealthService(opts.Ready, opts.HealthInterval),
	}
}

// Register adds the Authorization service and the gRPC health service to
// g. A grpc.Server made for it should have ServerOptions.
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
}

// ServerOptions are the options of the grpc.Server Serve runs: the
// message-size bound, TLS when configured, and keepalive rules that let
// Envoy keep its connection warm.
func (s *Server) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxRecvMsgSize),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if s.opts.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.opts.TLS)))
	}
	return opts
}

// Serve answers checks on ln until ctx ends, then stops gracefully: the
// health service turns NOT_SERVING, in-flight checks finish (for at most
// DrainTimeout) and ln is closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g := grpc.NewServer(s.ServerOptions()...)
	s.Register(g)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	select {
	case err := <-errc:
		s.health.stop()
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.health.stop()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	timer := time.NewTimer(s.opts.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		g.Stop()
		<-done
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc serve: %w", err)
	}
	return nil
}

// Check answers one ext_authz check. The error is always nil: every
// outcome is a CheckResponse (see the package documentation).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	start := time.Now()
	id := decision.NewID()
	defer func() {
		if v := recover(); v != nil {
			s.opts.Logger.Error("ext_authz check panicked", "decision_id", id, "panic", fmt.Sprint(v))
			resp = s.failed(id)
		}
	}()
	if !s.gatewayAuthenticated(ctx) {
		s.rejected(http.StatusInternalServerError)
		return denied(http.StatusInternalServerError, nil, denyBody{
			Error: CodeGatewayUnauthenticated, Description: "the ext_authz caller is not an authenticated gateway",
			Reasons: []string{CodeGatewayUnauthenticated}, DecisionID: id,
		}), nil
	}
	raw, ref := rawRequest(req, s.opts.MaxBodyBytes)
	if ref == nil && bodyNotForwarded(req, raw) {
		s.bodyWarning.Do(func() {
			s.opts.Logger.Warn("Envoy sends form requests without their body: the token-endpoint guardrails (refresh-token reuse) cannot see them; set the ext_authz filter's with_request_body",
				"decision_id", id)
		})
	}
	if ref == nil {
		r, err := decision.NewRequest(raw)
		if err == nil {
			return s.decide(ctx, r, raw.Headers, id, start), nil
		}
		ref = refuse(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), decision.ErrInvalidRequest.Error()+": "))
	}
	s.rejected(ref.status)
	return denied(ref.status, nil, denyBody{
		Error: "invalid_request", Description: ref.detail,
		Reasons: []string{decision.CodeRequestInvalid}, DecisionID: id,
	}), nil
}

// decide asks the pipeline and shapes its answer.
func (s *Server) decide(ctx context.Context, req *decision.Request, headers map[string][]string, id string, start time.Time) *authv3.CheckResponse {
	dec, err := s.decider.Decide(ctx, req)
	if dec == nil { // never from the engine; a deny all the same
		dec = decision.Failed()
		if err == nil {
			err = errors.New("no decision")
		}
	}
	dec.ID = id
	s.observe(ctx, dec, err, start)
	if err != nil {
		s.opts.Logger.Error("decision failed", "decision_id", id, "error", err)
		return s.failed(id)
	}
	if dec.Allow {
		return allowed(dec, headers)
	}
	codes := make([]string, len(dec.Reasons))
	for i, r := range dec.Reasons {
		codes[i] = r.Code
	}
	return denied(dec.Status, dec.Headers, denyBody{Reasons: codes, DecisionID: id})
}

// failed is the deny of a decision that could not be made: 500, never OK.
func (s *Server) failed(id string) *authv3.CheckResponse {
	return denied(http.StatusInternalServerError, nil, denyBody{
		Reasons: []string{decision.CodePolicyError}, DecisionID: id,
	})
}

// gatewayAuthenticated reports whether the caller may ask: anyone when no
// gateway authentication is configured, else a caller with a verified
// client certificate or the shared credential.
func (s *Server) gatewayAuthenticated(ctx context.Context) bool {
	mtls := s.opts.TLS != nil && s.opts.TLS.ClientCAs != nil
	if s.opts.Credential == "" && !mtls {
		return true
	}
	if p, ok := peer.FromContext(ctx); ok && mtls {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			return true
		}
	}
	if s.opts.Credential != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if vals := md.Get(GatewayMetadata); len(vals) == 1 {
			given := sha256.Sum256([]byte(vals[0]))
			return subtle.ConstantTimeCompare(given[:], s.digest[:]) == 1
		}
	}
	return false
}

func (s *Server) rejected(status int) {
	if s.opts.Metrics != nil {
		s.opts.Metrics.ObserveRejected(status)
	}
}

func (s *Server) observe(ctx context.Context, dec *decision.Decision, err error, start time.Time) {
	elapsed := time.Since(start)
	if s.opts.Metrics != nil {
		s.opts.Metrics.ObserveDecision(dec, err, elapsed)
	}
	if s.opts.DecisionLog != nil {
		var by string
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			by = p.Addr.String()
		}
		s.opts.DecisionLog.Log(ctx, decisionlog.Entry{Decision: dec, Err: err, Latency: elapsed, RequestedBy: by, Time: start})
	}
}
