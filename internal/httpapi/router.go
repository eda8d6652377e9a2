// Package httpapi is tokenguard's HTTP surface: chi routes that translate
// HTTP to and from the decision pipeline, plus health endpoints. One file a
// resource; one function writes every error.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/tokenguard/pdp/internal/decision"
)

// Decider makes decisions; *decision.Engine is the one in use.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*decision.Decision, error)
}

// Check is one readiness condition; nil means ready.
type Check struct {
	Name  string
	Ready func() error
}

// Options are the parts the router needs.
type Options struct {
	Decider Decider
	Checks  []Check
	Logger  *slog.Logger
	// Gateway, when enabled, admits only gateways to the decision endpoints.
	Gateway GatewayAuth
	// ForwardAuth, when set, serves /v1/forward-auth (nginx auth_request,
	// Traefik ForwardAuth, Caddy forward_auth).
	ForwardAuth *ForwardAuth
	// Admin, when its credential is set, serves the admin API.
	Admin Admin
	// Revoke, when set and someone can authenticate (revoke clients, or a
	// gateway credential or client CA), serves POST /v1/revoke (RFC 7009).
	Revoke *Revoke
	// SSF, when set, receives pushed security event tokens (RFC 8935) at
	// POST /v1/ssf/events.
	SSF http.Handler
	// RabbitMQ, when set, serves RabbitMQ's HTTP auth backend at
	// /v1/rabbitmq/{user,vhost,resource,topic} (messaging.rabbitmq).
	RabbitMQ *RabbitMQ
	// Mount, when set, adds routes (the dev issuer's, for example).
	Mount func(chi.Router)
	// DecisionLog, when set, receives one entry per decision.
	DecisionLog DecisionLogger
	// Metrics, when set, counts decisions; MetricsHandler, when set, is
	// served at GET /metrics.
	Metrics        DecisionMetrics
	MetricsHandler http.Handler
	// Status, when set, is the policy status GET /v1/status shows (its
	// members at the top level); StatusParts add members (store, issuers,
	// decision_logs). The route exists when either is set.
	Status      func() any
	StatusParts []StatusPart
	// Ops protects /metrics and /v1/status. Without its credential, New
	// puts them behind Gateway (open when Gateway is off) and NewOps
	// leaves them open.
	Ops OpsAuth
	// OpsElsewhere, when set, leaves /metrics and /v1/status to NewOps's
	// listener: New serves only the probes of the operations endpoints.
	OpsElsewhere bool
}

// New returns the HTTP handler of the decision listener: the API, the
// probes and, unless OpsElsewhere, /metrics and /v1/status.
func New(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := newRouter()
	mountProbes(r, opts)
	obs := observer{logs: opts.DecisionLog, metrics: opts.Metrics}
	d := &decide{decider: opts.Decider, logger: opts.Logger, observer: obs}
	r.With(opts.Gateway.middleware).Post("/v1/decide", d.serveHTTP)
	if opts.ForwardAuth != nil {
		fa := newForwardAuth(*opts.ForwardAuth, opts.Decider, opts.Logger, obs)
		r.With(opts.Gateway.middleware).HandleFunc("/v1/forward-auth", fa.serveHTTP)
		r.With(opts.Gateway.middleware).HandleFunc("/v1/forward-auth/*", fa.serveHTTP)
	}
	if opts.Admin.Credential != "" && opts.Admin.Store != nil {
		mountAdmin(r, opts.Admin, opts.Logger, opts.DecisionLog)
	}
	if opts.Revoke != nil {
		// Never an open endpoint: without a way to authenticate a client
		// or a gateway, /v1/revoke is not served.
		if v := newRevoke(*opts.Revoke, opts.Logger); v.auth.enabled() {
			r.Post("/v1/revoke", v.serveHTTP)
		}
	}
	if opts.SSF != nil {
		r.Method(http.MethodPost, "/v1/ssf/events", opts.SSF)
	}
	if opts.RabbitMQ != nil {
		mountRabbitMQ(r, *opts.RabbitMQ, opts.Decider, opts.Logger, obs)
	}
	if !opts.OpsElsewhere {
		mountOps(r, opts, opts.Ops.middleware(opts.Gateway.middleware))
	}
	if opts.Mount != nil {
		opts.Mount(r)
	}
	return r
}

// newRouter is a router with the recovery and the problem documents every
// listener shares.
func newRouter() chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, Problem{Type: TypeNotFound, Title: "Not Found", Status: http.StatusNotFound})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, Problem{Type: TypeMethod, Title: "Method Not Allowed", Status: http.StatusMethodNotAllowed})
	})
	return r
}
