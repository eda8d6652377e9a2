package ssf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/store"
)

// Revoker records revocations and remembers the SETs applied, durably
// (a restart forgets nothing) and, with the shared store, for every
// replica. *store.Bolt and *store.Shared satisfy it.
type Revoker interface {
	// PutRevocation stores r and returns the revocation in effect for its
	// target. Writing the same revocation twice is harmless.
	PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	// SETSeen reports whether the SET with key was applied before.
	SETSeen(ctx context.Context, key string) (bool, error)
	// RememberSET records that the SET with key was applied, until exp.
	RememberSET(ctx context.Context, key string, exp time.Time) error
}

// Options tune a Receiver. Zero fields take their defaults.
type Options struct {
	// HTTPClient fetches jwks_uri and polls transmitters. Default: a client
	// with FetchTimeout that does not follow redirects. Every request is
	// bounded by FetchTimeout whatever the client's own timeout.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch or poll. Default
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Logger receives one line per SET (never the SET itself). Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// RevocationTTL is how long a revocation lasts after it is written; it
	// must outlive every token issued before the cut-off. Default
	// DefaultRevocationTTL.
	RevocationTTL time.Duration
	// JWKSRefresh and JWKSMinRefetch: see VerifierOptions.
	JWKSRefresh    time.Duration
	JWKSMinRefetch time.Duration
	// MaxAge is how old (by iat) a SET may be; older ones are refused
	// with invalid_request. Applied SETs are remembered (by issuer and
	// jti) for MaxAge + Skew after their iat, so that no SET young enough
	// to be accepted is applied twice. Default DefaultMaxAge.
	MaxAge time.Duration
	// Skew is how far in the future a SET's iat may lie. Default
	// DefaultSkew; NoSkew for none.
	Skew time.Duration
	// PollMaxEvents is the maxEvents of each poll. Default
	// DefaultPollMaxEvents.
	PollMaxEvents int
	// Observer, when set, is told the outcome of every SET and of every
	// poll (for metrics).
	Observer Observer
}

// Observer is told what became of each SET received, pushed or polled. Its
// method must be cheap and safe for concurrent use.
type Observer interface {
	// SETProcessed reports one SET: event is the short name of a known
	// event type (EventNames), EventUnknown, or EventNone when the SET was
	// refused before its event could be read; outcome is one of the
	// Outcome* constants.
	SETProcessed(event, outcome string)
	// SSFPolled reports one poll request to a transmitter (RFC 8936):
	// answered with a poll response (ok) or not (unreachable, an error
	// status, an unreadable or oversized response). Polls cut short by
	// shutdown are not reported.
	SSFPolled(ok bool)
}

// Event labels besides the known events' short names.
const (
	EventUnknown = "unknown"
	EventNone    = "none"
)

// Outcomes of a SET (Observer.SETProcessed).
const (
	OutcomeApplied      = "applied"
	OutcomeIgnored      = "ignored"
	OutcomeDuplicate    = "duplicate"
	OutcomeRefused      = "refused"
	OutcomeStoreFailure = "store_failure"
)

type noObserver struct{}

func (noObserver) SETProcessed(string, string) {}
func (noObserver) SSFPolled(bool)              {}

// Defaults of Options.
const (
	DefaultRevocationTTL = 30 * 24 * time.Hour
	DefaultMaxAge        = 24 * time.Hour
	DefaultSkew          = time.Minute
	DefaultPollMaxEvents = 50
	// processTimeout bounds the handling of one pushed SET once received,
	// which goes on when the transmitter hangs up.
	processTimeout = 15 * time.Second
)

func (o Options) withDefaults() Options {
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient(o.FetchTimeout)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RevocationTTL <= 0 {
		o.RevocationTTL = DefaultRevocationTTL
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Skew == 0 {
		o.Skew = DefaultSkew
	}
	if o.PollMaxEvents <= 0 {
		o.PollMaxEvents = DefaultPollMaxEvents
	}
	return o
}

// Result says what one SET did.
type Result struct {
	// Transmitter is the issuer of the SET.
	Transmitter string
	// JTIHash identifies the SET in logs (see SET.JTIHash).
	JTIHash string
	// EventType is the event's URI.
	EventType string
	// SubjectFormat names the subject's format, e.g. "iss_sub" or
	// "complex(user=iss_sub,session=opaque)".
	SubjectFormat string
	// Revocations are the revocations in effect after the SET, as the
	// store returned them.
	Revocations []store.Revocation
	// Ignored, when not empty, says why an accepted SET changed nothing
	// (one of the Ignored* constants).
	Ignored string
	// Duplicate reports a SET applied before (same issuer and jti), on
	// this replica or another, before a restart or after: it is accepted
	// again and not applied again.
	Duplicate bool
}

// Stats count what a Receiver has done since it started.
type Stats struct {
	// Applied counts SETs that wrote revocations.
	Applied uint64
	// Ignored counts SETs accepted without effect (unknown event type,
	// unsupported subject format, device now compliant).
	Ignored uint64
	// Duplicates counts SETs accepted again without being applied again.
	Duplicates uint64
	// Refused counts SETs refused with an RFC 8935 error.
	Refused uint64
	// StoreFailures counts valid SETs that could not be recorded.
	StoreFailures uint64
}

// Receiver turns SETs into revocations. It serves the push endpoint
// (ServeHTTP) and polls the transmitters that have a poll endpoint (Run).
// It is safe for concurrent use.
type Receiver struct {
	verifier *Verifier
	rev      Revoker
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration
	window   time.Duration // how long after its iat a SET is remembered
	pollers  []*poller
	obs      Observer

	applied, ignored, duplicates, refused, storeFailures atomic.Uint64
}

// NewReceiver loads the transmitters' keys (see NewVerifier) and returns a
// receiver that writes revocations to rev.
func NewReceiver(ctx context.Context, cfg []config.Transmitter, rev Revoker, opts Options) (*Receiver, error) {
	if rev == nil {
		return nil, errors.New("ssf: a revocation store is required")
	}
	opts = opts.withDefaults()
	v, err := NewVerifier(ctx, cfg, VerifierOptions{
		HTTPClient:     opts.HTTPClient,
		FetchTimeout:   opts.FetchTimeout,
		JWKSRefresh:    opts.JWKSRefresh,
		JWKSMinRefetch: opts.JWKSMinRefetch,
		MaxAge:         opts.MaxAge,
		Skew:           opts.Skew,
		Now:            opts.Now,
		Logger:         opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	r := &Receiver{
		verifier: v,
		rev:      rev,
		log:      opts.Logger,
		now:      opts.Now,
		ttl:      opts.RevocationTTL,
		window:   opts.MaxAge + max(opts.Skew, 0),
		obs:      opts.Observer,
	}
	if r.obs == nil {
		r.obs = noObserver{}
	}
	for _, tc := range cfg {
		if tc.PollEndpoint == "" {
			continue
		}
		interval := tc.PollInterval
		if interval <= 0 {
			interval = config.DefaultPollInterval
		}
		r.pollers = append(r.pollers, &poller{
			r:         r,
			issuer:    tc.Issuer,
			endpoint:  tc.PollEndpoint,
			tokenFile: tc.PollTokenFile,
			interval:  interval,
			maxEvents: opts.PollMaxEvents,
			client:    opts.HTTPClient,
			timeout:   opts.FetchTimeout,
			log:       opts.Logger.With("transmitter", tc.Issuer),
		})
	}
	return r, nil
}

// Stats returns the receiver's counters.
func (r *Receiver) Stats() Stats {
	return Stats{
		Applied:       r.applied.Load(),
		Ignored:       r.ignored.Load(),
		Duplicates:    r.duplicates.Load(),
		Refused:       r.refused.Load(),
		StoreFailures: r.storeFailures.Load(),
	}
}

// Process verifies one SET and applies it. It returns an *Error when the
// SET is refused, an error wrapping ErrStore when it could not be recorded
// (the transmitter should deliver it again), or what the SET did.
func (r *Receiver) Process(ctx context.Context, raw []byte) (Result, error) {
	return r.process(ctx, raw, expect{})
}

// expect narrows what process accepts: a polled SET must come from the
// polled transmitter and carry the jti it was delivered under.
type expect struct {
	issuer, jti string
}

func (r *Receiver) process(ctx context.Context, raw []byte, want expect) (Result, error) {
	set, err := r.verifier.verify(ctx, raw, want.issuer)
	if err == nil && want.jti != "" && set.JTI != want.jti {
		err = refuse(CodeInvalidRequest, "the SET's jti is not the one it was delivered under")
	}
	if err != nil {
		r.refused.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeRefused)
		r.logRefusal(ctx, err, set)
		return Result{}, err
	}
	res := Result{
		Transmitter:   set.Issuer,
		JTIHash:       set.JTIHash,
		EventType:     set.EventType,
		SubjectFormat: describeSubject(set.Subject),
	}
	log := r.log.With(
		"transmitter", res.Transmitter,
		"jti_hash", res.JTIHash,
		"event", truncate(res.EventType, maxEventTypeInLog),
		"subject_format", res.SubjectFormat,
	)
	now := r.now()
	seen, err := r.rev.SETSeen(ctx, set.JTIHash)
	if err != nil {
		r.storeFailures.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeStoreFailure)
		log.ErrorContext(ctx, "ssf: the replay check failed; the SET is not acknowledged", "error", err)
		return Result{}, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if seen {
		r.duplicates.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeDuplicate)
		res.Duplicate = true
		log.InfoContext(ctx, "ssf: SET delivered again; already applied")
		return res, nil
	}
	p, rerr := planEvent(set, now)
	if rerr != nil {
		r.refused.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeRefused)
		r.logRefusal(ctx, rerr, set)
		return Result{}, rerr
	}
	if len(p.targets) == 0 {
		if err := r.remember(ctx, set, log); err != nil {
			return Result{}, err
		}
		r.ignored.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeIgnored)
		res.Ignored = p.ignored
		log.InfoContext(ctx, "ssf: SET accepted without effect", "ignored", p.ignored)
		return res, nil
	}
	for _, t := range p.targets {
		kept, err := r.rev.PutRevocation(ctx, store.Revocation{
			ID:        revocationID(set, t),
			Kind:      t.kind,
			Issuer:    t.issuer,
			Value:     t.value,
			Reason:    "ssf:" + p.name,
			NotBefore: p.cutoff,
			ExpiresAt: now.Add(r.ttl),
		})
		if errors.Is(err, store.ErrInvalid) {
			// Delivering it again would fail the same way.
			rerr := refuse(CodeInvalidRequest, "the event names a subject that cannot be recorded")
			r.refused.Add(1)
			r.obs.SETProcessed(eventLabel(set), OutcomeRefused)
			r.logRefusal(ctx, rerr, set)
			return Result{}, rerr
		}
		if err != nil {
			r.storeFailures.Add(1)
			r.obs.SETProcessed(eventLabel(set), OutcomeStoreFailure)
			log.ErrorContext(ctx, "ssf: recording the revocation failed; the SET is not acknowledged", "kind", string(t.kind), "error", err)
			return Result{}, fmt.Errorf("%w: %w", ErrStore, err)
		}
		res.Revocations = append(res.Revocations, kept)
	}
	if err := r.remember(ctx, set, log); err != nil {
		return Result{}, err
	}
	r.applied.Add(1)
	r.obs.SETProcessed(eventLabel(set), OutcomeApplied)
	log.InfoContext(ctx, "ssf: SET applied",
		"kind", string(p.targets[0].kind),
		"revocations", len(res.Revocations),
		"not_before", p.cutoff)
	return res, nil
}

// remember records set as applied until no delivery of it can be accepted
// any more (its iat plus the maximum age and skew). A failure is a store
// failure: the transmitter delivers the SET again, and applying it again
// writes the same revocations.
func (r *Receiver) remember(ctx context.Context, set *SET, log *slog.Logger) error {
	if err := r.rev.RememberSET(ctx, set.JTIHash, set.IssuedAt.Add(r.window)); err != nil {
		r.storeFailures.Add(1)
		r.obs.SETProcessed(eventLabel(set), OutcomeStoreFailure)
		log.ErrorContext(ctx, "ssf: remembering the SET failed; the SET is not acknowledged", "error", err)
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}

// revocationID is derived from the SET and the target, so that applying a
// SET again rewrites the same revocation.
func revocationID(set *SET, t target) string {
	h := sha256.New()
	for _, s := range []string{set.Issuer, set.JTI, string(t.kind), t.issuer, t.value} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "ssf-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// logRefusal logs a refused SET: the code, the fixed description and, once
// the SET is authentic, its jti hash. set may be nil.
func (r *Receiver) logRefusal(ctx context.Context, err error, set *SET) {
	attrs := []any{}
	if e, ok := AsError(err); ok {
		attrs = append(attrs, "err", e.Code, "description", e.Description)
		if e.cause != nil {
			attrs = append(attrs, "cause", e.cause.Error())
		}
	}
	if set != nil {
		attrs = append(attrs, "transmitter", set.Issuer, "jti_hash", set.JTIHash,
			"event", truncate(set.EventType, maxEventTypeInLog))
	}
	r.log.InfoContext(ctx, "ssf: SET refused", attrs...)
}

// ContentType is the media type of a pushed SET (RFC 8417 §2.3).
const ContentType = "application/secevent+jwt"

// ServeHTTP is the RFC 8935 push endpoint: a POST whose body is one SET
// with Content-Type application/secevent+jwt. It answers 202 with no body
// once the SET is applied (or was applied before), 400 with
// {"err","description"} when the SET is refused, and 500 when it could not
// be recorded, so that the transmitter delivers it again.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Err: CodeInvalidRequest, Description: "SETs are delivered with POST"})
		return
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != ContentType {
		r.refused.Add(1)
		r.obs.SETProcessed(EventNone, OutcomeRefused)
		writeJSON(w, http.StatusBadRequest, errorBody{Err: CodeInvalidRequest, Description: "the content type must be " + ContentType})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxSETSize+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		r.refused.Add(1)
		r.obs.SETProcessed(EventNone, OutcomeRefused)
		writeJSON(w, http.StatusBadRequest, errorBody{Err: CodeInvalidRequest, Description: "the SET is too large"})
		return
	case err != nil:
		r.refused.Add(1)
		r.obs.SETProcessed(EventNone, OutcomeRefused)
		writeJSON(w, http.StatusBadRequest, errorBody{Err: CodeInvalidRequest, Description: "the request body could not be read"})
		return
	}
	// The SET is handled to the end even when the transmitter hangs up:
	// it has been received, and it may revoke something.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), processTimeout)
	defer cancel()
	_, err = r.Process(ctx, bytes.TrimSpace(body))
	if err == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if e, ok := AsError(err); ok {
		writeJSON(w, http.StatusBadRequest, errorBody{Err: e.Code, Description: e.Description})
		return
	}
	writeJSON(w, http.StatusInternalServerError, errorBody{Description: "the event could not be recorded; deliver it again later"})
}

// errorBody is the RFC 8935 §2.3 error response.
type errorBody struct {
	Err         string `json:"err,omitempty"`
	Description string `json:"description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
