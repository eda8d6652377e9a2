package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// OpsAuth protects the operations endpoints that tell how the PDP is set
// up (/metrics, /v1/status). The probes (/healthz, /readyz) stay open:
// kubelets and load balancers call them without credentials.
type OpsAuth struct {
	// Credential, when set, is the bearer credential /metrics and
	// /v1/status need (Authorization: Bearer ...).
	Credential string
}

// NewOps returns the handler of a listener of its own for the operations
// endpoints (ops.listen): /healthz, /readyz, /metrics and /v1/status, the
// last two behind opts.Ops when it has a credential.
func NewOps(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := newRouter()
	mountProbes(r, opts)
	mountOps(r, opts, opts.Ops.middleware(nil))
	return r
}

// mountProbes serves the probes: open to everyone.
func mountProbes(r chi.Router, opts Options) {
	h := &health{checks: opts.Checks}
	r.Get("/healthz", h.live)
	r.Get("/readyz", h.ready)
}

// mountOps serves /metrics and /v1/status behind guard.
func mountOps(r chi.Router, opts Options, guard func(http.Handler) http.Handler) {
	if opts.MetricsHandler != nil {
		r.With(guard).Method(http.MethodGet, "/metrics", opts.MetricsHandler)
	}
	if opts.Status != nil || len(opts.StatusParts) > 0 {
		parts := opts.StatusParts
		if len(opts.Checks) > 0 {
			h := &health{checks: opts.Checks}
			parts = append([]StatusPart{{Name: "readiness", Get: h.readiness}}, parts...)
		}
		st := &status{policy: opts.Status, parts: parts, logger: opts.Logger}
		r.With(guard).Get("/v1/status", st.serveHTTP)
	}
}

// middleware admits callers with the ops credential. Without one,
// fallback (the gateway check on the decision listener) decides; a nil
// fallback admits everyone.
func (o OpsAuth) middleware(fallback func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	if o.Credential == "" {
		if fallback != nil {
			return fallback
		}
		return func(next http.Handler) http.Handler { return next }
	}
	digest := sha256.Sum256([]byte(o.Credential))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			given := sha256.Sum256([]byte(strings.TrimSpace(cred)))
			if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare(given[:], digest[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tokenguard-ops"`)
				writeProblem(w, Problem{Type: TypeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
					Detail: "this endpoint needs the ops bearer credential"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
