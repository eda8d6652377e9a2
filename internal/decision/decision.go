// Package decision is the pipeline of one decision: normalise the request,
// verify the token, build the policy input as an ast.Value, evaluate the
// active policy and shape the answer. It knows nothing of HTTP or gRPC; every
// transport translates its wire format to a Request and a Decision back.
package decision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// CodePolicyError is the reason of every decision the policy could not make.
const CodePolicyError = "policy_error"

// CodeStateUnavailable is the reason of a deny, or the code of a warning,
// when a check needed the shared state and it could not be reached (see
// store.on_unavailable).
const CodeStateUnavailable = "state_unavailable"

// TokenVerifier verifies access tokens, and refresh tokens presented at the
// token endpoint; *token.Verifier is the one in use.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Token, error)
	VerifyRefresh(ctx context.Context, raw string) (*token.Token, error)
	// Recheck applies Verify's time checks (exp, nbf, iat with the clock
	// skew) to a token verified earlier (Message.Verified).
	Recheck(tok *token.Token) *token.Error
}

// ProofVerifier verifies DPoP proofs; *dpop.Verifier is the one in use.
type ProofVerifier interface {
	Verify(ctx context.Context, r dpop.Request) (*dpop.Proof, error)
}

// Evaluator evaluates the active policy; *policy.Engine is the one in use.
type Evaluator interface {
	Eval(ctx context.Context, input ast.Value, now time.Time) (policy.Result, string, error)
	Settings() policy.Settings
}

// EvalObserver is told how long each policy evaluation took (for a
// latency histogram). It must be cheap and safe for concurrent use.
type EvalObserver interface {
	ObserveEval(d time.Duration, err error)
}

// State is the part of the state store the pipeline writes: refresh-token
// families (atomic reuse detection), the revocations a decision asks for,
// and fingerprints; and the revocations of refresh tokens it reads. The policy reads the store through built-ins.
type State interface {
	UseRefreshTokenFrom(ctx context.Context, f store.Family, hash string, p store.Presentation) (store.Family, error)
	CheckRevocation(ctx context.Context, ref store.TokenRef) (store.Revocation, bool, error)
	PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	RecordFingerprint(ctx context.Context, tokenHash string, s store.Sighting) error
}

// Decision is the answer to one Request.
type Decision struct {
	ID              string            `json:"decision_id"`
	Allow           bool              `json:"allow"`
	Status          int               `json:"status"`
	Reasons         []policy.Reason   `json:"reasons"`
	Warnings        []policy.Reason   `json:"warnings"`
	Headers         map[string]string `json:"headers"`
	UpstreamHeaders map[string]string `json:"upstream_headers"`
	Token           *TokenSummary     `json:"token"`
	Policy          PolicyRef         `json:"policy"`
	// TokenHash is the SHA-256 of the presented token, for logs; never the token.
	TokenHash string `json:"-"`
	// GrantType is the grant type the policy derived ("" when none), for
	// logs and metrics; set on token-endpoint decisions too.
	GrantType string `json:"-"`
	// Input is the policy input the decision was made on, for decision
	// logs; nil when the decision failed before it was built. It carries
	// no token, proof or credential, only their hashes and verified claims.
	// A reused decision carries its input only with Options.LogInputs.
	Input ast.Value `json:"-"`
	// Reused is set when the decision was answered from an earlier one
	// for the same request and unchanged state (see reuse.go).
	Reused bool `json:"-"`
	// evaluatedAt is the time the active policy evaluated Input at; zero
	// when it did not answer this decision (a shadow policy sees only
	// those: see Shadow).
	evaluatedAt time.Time
	// Answers are what the nondeterministic built-ins (pdp.revocation,
	// pdp.last_seen) answered to the evaluation the decision was made on,
	// by built-in and arguments, for decision logs (nd_builtin_cache), so
	// that a replay can answer as they did. Set with Options.LogInputs.
	Answers topdown.NDBCache `json:"-"`
	// Explain is set when the decision was explained (Engine.Explain), not
	// made: nothing was written for it.
	Explain bool `json:"-"`
}

// MarshalJSON writes the decision with every list and map present: an
// empty one is [] or {}, never null, whichever path made the decision (a
// policy result, a reused one, a deny Go decided).
func (d *Decision) MarshalJSON() ([]byte, error) {
	type plain Decision // without this method
	out := plain(*d)
	out.Reasons = nonNil(out.Reasons)
	out.Warnings = nonNil(out.Warnings)
	if out.Headers == nil {
		out.Headers = map[string]string{}
	}
	if out.UpstreamHeaders == nil {
		out.UpstreamHeaders = map[string]string{}
	}
	if out.Token != nil && out.Token.Scopes == nil {
		t := *out.Token
		t.Scopes = []string{}
		out.Token = &t
	}
	return json.Marshal(out)
}

// TokenSummary names the verified token a decision was about.
type TokenSummary struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	GrantType string   `json:"grant_type,omitempty"`
	Scopes    []string `json:"scopes"`
}

// PolicyRef says which policy version and grant module decided.
type PolicyRef struct {
	Revision string `json:"revision"`
	Module   string `json:"module"`
}

// Engine makes decisions. It is safe for concurrent use.
type Engine struct {
	tokens      TokenVerifier
	proofs      ProofVerifier
	nonces      *dpop.Nonces
	policy      Evaluator
	state       State
	recorder    *recorder
	environment ast.Value
	timeout     time.Duration
	revocations time.Duration
	now         func() time.Time
	logger      *slog.Logger
	observer    EvalObserver
	reuse       *reuseCache
	logInputs   bool
	admission   *admission
}

// Options configure an Engine.
type Options struct {
	Environment string
	Timeout     time.Duration
	// Proofs verifies DPoP proofs; Nonces, when set, issues server nonces.
	Proofs ProofVerifier
	Nonces *dpop.Nonces
	// State is written after decisions (effects, fingerprints, refresh
	// families).
	State State
	// RevocationTTL is how long a revocation a decision asks for applies.
	RevocationTTL time.Duration
	// FingerprintQueue and FingerprintWriters bound the asynchronous
	// recording of bearer-token sightings.
	FingerprintQueue   int
	FingerprintWriters int
	Now                func() time.Time
	Logger             *slog.Logger
	// Observer, when set, is told the duration of every policy evaluation.
	Observer EvalObserver
	// ReuseEntries bounds the decisions kept for reuse (see reuse.go); 0
	// turns reuse off. ReuseBytes bounds the heap they hold, by estimate
	// (0: DefaultReuseBytes). ReuseTTL bounds how long one is kept.
	ReuseEntries int
	ReuseBytes   int64
	ReuseTTL     time.Duration
	// ReuseVersionSpread: a decision kept under the policy version just
	// replaced is still reused until a random moment within this long of
	// the activation (see decision_cache.version_spread); 0: never.
	ReuseVersionSpread time.Duration
	// LogInputs says that decisions are logged with their input: a reused
	// decision then builds its input too (kept decisions do not hold one).
	LogInputs bool
	// MaxConcurrent bounds the policy evaluations that run at once; 0
	// turns admission control off. MaxQueue evaluations more may wait for
	// a turn, each for at most MaxQueueWait; beyond, the decision is an
	// overloaded deny (503, Retry-After).
	MaxConcurrent int
	MaxQueue      int
	MaxQueueWait  time.Duration
}

// RefreshCompletionCap bounds a refresh-token decision from the moment its
// use is written, in place of the request's deadline (see Decide).
const RefreshCompletionCap = 5 * time.Second

// NewEngine wires the pipeline. Fingerprint writers run until ctx ends.
func NewEngine(ctx context.Context, tokens TokenVerifier, eval Evaluator, opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.RevocationTTL <= 0 {
		opts.RevocationTTL = 30 * 24 * time.Hour
	}
	e := &Engine{
		tokens:      tokens,
		proofs:      opts.Proofs,
		nonces:      opts.Nonces,
		policy:      eval,
		state:       opts.State,
		environment: ast.String(opts.Environment),
		timeout:     opts.Timeout,
		revocations: opts.RevocationTTL,
		now:         opts.Now,
		logger:      opts.Logger,
		observer:    opts.Observer,
		logInputs:   opts.LogInputs,
	}
	if opts.MaxConcurrent > 0 {
		e.admission = newAdmission(opts.MaxConcurrent, max(opts.MaxQueue, 0), opts.MaxQueueWait)
	}
	if opts.ReuseEntries > 0 && opts.ReuseTTL > 0 {
		e.reuse = newReuseCache(opts.ReuseEntries, opts.ReuseBytes, opts.ReuseTTL)
		e.reuse.spread = max(opts.ReuseVersionSpread, 0)
		if eval != nil {
			go e.reuse.sweepLoop(ctx, e.now, func() policy.Reuse { return eval.Settings().Reuse })
		}
	}
	if opts.State != nil {
		e.recorder = newRecorder(ctx, opts.State, opts.FingerprintQueue, opts.FingerprintWriters, opts.Logger)
	}
	return e
}

// Decide answers one request. It always returns a Decision; when the policy
// could not decide it is a deny with reason policy_error, status 500, and the
// error says why. No error path ever produces an allow. A decision that
// found no room or ran out of time is an overloaded deny (503), one whose
// caller went away a canceled deny; neither is an error.
func (e *Engine) Decide(ctx context.Context, req *Request) (*Decision, error) {
	return e.decide(ctx, req, nil)
}

// decide is Decide, or with r an explanation (explain.go): every write
// goes through r.writes.
func (e *Engine) decide(ctx context.Context, req *Request, r *run) (*Decision, error) {
	d := &Decision{ID: NewID()}
	if req.PathRefused != "" {
		// Before any route is matched, and before the token: a path that
		// parsers read differently is refused whatever it carries.
		deny(d, 400, CodeRequestPathInvalid, "the request path is refused: "+req.PathRefused)
		return d, nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, e.timeout, errDecisionDeadline)
	defer cancel()
	// The store notes the checks that met an unavailable shared state.
	ctx, notes := store.WithNotes(ctx)
	now := e.now()
	settings := e.policy.Settings()

	var (
		cred   credential
		tok    *token.Token
		tokErr *token.Error
		proof  proofResult
		te     *tokenEndpointResult
		err    error
	)
	admitted := false
	if isTokenEndpoint(req, settings) {
		// The refresh token's use is written before the policy runs: the
		// evaluation slot is taken first, so that an overloaded answer has
		// written nothing and the client's retry is not taken for reuse.
		if e.admission != nil {
			if err := e.admission.acquire(ctx); err != nil {
				return e.failOrUnavailable(ctx, d, err, notes)
			}
			defer e.admission.release()
			admitted = true
		}
		if te, err = e.tokenEndpoint(ctx, req, settings, now, r); err != nil {
			return e.failOrUnavailable(ctx, d, err, notes)
		}
		if te.refresh != nil && te.refresh.valid && !r.explaining() {
			// The refresh token's use is written: the decision now
			// completes whatever the request's deadline, since an
			// overloaded answer would make the client's retry reuse (and
			// revoke its session), and a reuse's revocation must be
			// applied. It gets a hard cap of its own instead.
			var cancelDetached context.CancelFunc
			ctx, cancelDetached = context.WithTimeoutCause(context.WithoutCancel(ctx), RefreshCompletionCap, errDecisionDeadline)
			defer cancelDetached()
		}
		tokErr = &token.Error{Code: token.CodeTokenMissing, Message: "no access token"}
	} else {
		cred = extractCredential(req.Headers)
		if req.Message != nil && req.Message.Verified != nil {
			cred, tok, tokErr = e.recheckToken(req.Message.Verified)
			d.TokenHash = req.Message.Verified.Hash
		} else {
			tok, tokErr = e.verifyToken(ctx, cred)
		}
		if cred.raw != "" {
			d.TokenHash = token.HashToken(cred.raw)
		}
		// A message has no HTTP request a DPoP proof could be bound to:
		// none is verified and no nonce issued.
		if req.Message == nil {
			if proof, err = e.verifyProof(ctx, req, cred, tok, now, r); err != nil {
				return e.failOrUnavailable(ctx, d, err, notes)
			}
		}
	}
	if e.interrupted(ctx, d, nil) {
		return d, nil
	}

	var (
		key  reuseKey
		deps *builtins.Deps
	)
	evalCtx := ctx
	// A check that met an unavailable shared state makes the decision
	// one of a kind: it is neither answered from nor kept for reuse.
	if e.reuse != nil && reusable(tok, proof, te, settings.Reuse) && notes.Empty() &&
		r.writes(WriteDecisionKept, "the decision cache was neither read nor written") {
		key = keyOf(req, cred, tok, proof, settings.Reuse)
		kept := e.reuse.lookup(ctx, key, req, tok, settings.Reuse, now)
		if kept == nil && e.reuse.inSpread(settings.Reuse, now) {
			// Kept under the version just replaced, maybe still within
			// its grace: the same request hashed with that version.
			prev := settings.Reuse
			prev.Version = prev.Previous
			kept = e.reuse.lookup(ctx, keyOf(req, cred, tok, proof, prev), req, tok, settings.Reuse, now)
		}
		if kept != nil && notes.Empty() {
			e.reuse.hits.Add(1)
			if e.logInputs {
				d.Input = buildInput(req, cred, tok, tokErr, proof, te, e.environment, now)
				d.Answers = kept.answers
			}
			return e.reused(d, kept, req, tok, now), nil
		}
		e.reuse.misses.Add(1)
		deps = &builtins.Deps{}
		evalCtx = builtins.Track(ctx, deps)
	}

	input := buildInput(req, cred, tok, tokErr, proof, te, e.environment, now)
	d.Input = input
	res, rev, err := e.eval(evalCtx, input, now, admitted, r)
	d.Policy.Revision = rev
	if err != nil {
		return e.failOrUnavailable(ctx, d, err, notes)
	}
	// Durable effects are on disk before the answer; a failed one fails
	// the decision closed.
	if err := e.applyEffects(ctx, res.Effects, now, r); err != nil {
		return e.failOrUnavailable(ctx, d, err, notes)
	}
	if deps != nil && ctx.Err() == nil && notes.Empty() {
		e.reuse.keep(key, req, tok, settings.Reuse, deps, res, rev, now, e.logInputs)
	}
	e.answer(d, res, tok)
	d.evaluatedAt = now
	if e.logInputs {
		d.Answers = res.NDBuiltinCache
	}
	if te != nil && te.refresh != nil && te.refresh.retried {
		d.Warnings = append(slices.Clip(d.Warnings), policy.Reason{Code: CodeRefreshTokenRetried,
			Message: "the refresh token was presented again within the reuse grace, from the same client and network; let through once"})
	}
	if w := unavailableWarnings(notes); len(w) > 0 {
		d.Warnings = append(slices.Clip(d.Warnings), w...)
	}
	if tok != nil && d.Allow {
		e.recordSighting(req, tok, res.Warnings, now, r)
	}
	return d, nil
}

// eval evaluates the policy once admission gives it a turn (admitted: the
// caller holds one already). An evaluation cut short by the context is not
// counted as an evaluation error.
func (e *Engine) eval(ctx context.Context, input ast.Value, now time.Time, admitted bool, r *run) (policy.Result, string, error) {
	if e.admission != nil && !admitted {
		if err := e.admission.acquire(ctx); err != nil {
			return policy.Result{}, "", err
		}
		defer e.admission.release()
	}
	var start time.Time
	if e.observer != nil {
		start = time.Now()
	}
	var (
		res policy.Result
		rev string
		err error
	)
	if r.explaining() {
		// The same version evaluates the decision and its explanation.
		res, rev, r.explanation, err = e.policy.(PolicyExplainer).Explain(ctx, input, now)
	} else {
		res, rev, err = e.policy.Eval(ctx, input, now)
	}
	if e.observer != nil {
		observed := err
		if ctx.Err() != nil {
			observed = nil
		}
		e.observer.ObserveEval(time.Since(start), observed)
	}
	return res, rev, err
}

// answer fills d from the policy's result.
func (e *Engine) answer(d *Decision, res policy.Result, tok *token.Token) {
	d.Allow = res.Allow
	d.Status = res.Status
	d.Reasons = nonNil(res.Reasons)
	d.Warnings = nonNil(res.Warnings)
	d.Headers = res.Headers
	d.UpstreamHeaders = res.UpstreamHeaders
	d.Policy.Module = res.Module
	d.GrantType = res.GrantType
	if tok != nil {
		d.Token = &TokenSummary{
			Issuer:    tok.Issuer,
			Subject:   tok.Subject,
			ClientID:  tok.ClientID,
			JTI:       tok.JTI,
			GrantType: res.GrantType,
			Scopes:    tok.Scopes,
		}
		if d.Token.Scopes == nil {
			d.Token.Scopes = []string{}
		}
	}
}

// reused answers from a kept decision. The sighting is recorded at most
// once per sightingEvery per kept decision.
func (e *Engine) reused(d *Decision, kept *reuseEntry, req *Request, tok *token.Token, now time.Time) *Decision {
	d.Reused = true
	d.Policy.Revision = kept.revision
	e.answer(d, kept.answer.result(), tok)
	if d.Allow {
		last := kept.recorded.Load()
		if now.UnixNano()-last >= int64(sightingEvery) && kept.recorded.CompareAndSwap(last, now.UnixNano()) {
			e.recordSighting(req, tok, kept.answer.warnings, now, nil)
		}
	}
	return d
}

// ReuseStats reports how many decisions were answered from kept ones; zero
// when reuse is off.
func (e *Engine) ReuseStats() ReuseStats {
	if e.reuse == nil {
		return ReuseStats{}
	}
	return e.reuse.stats()
}

// verifyToken verifies the presented access token; the error is the reason
// the policy reports.
func (e *Engine) verifyToken(ctx context.Context, cred credential) (*token.Token, *token.Error) {
	switch {
	case cred.err != nil:
		return nil, cred.err
	case cred.raw == "":
		return nil, &token.Error{Code: token.CodeTokenMissing, Message: "no access token"}
	}
	t, err := e.tokens.Verify(ctx, cred.raw)
	if err == nil {
		return t, nil
	}
	var te *token.Error
	if errors.As(err, &te) {
		return nil, te
	}
	return nil, &token.Error{Code: token.CodeTokenMalformed, Message: "token could not be verified", Err: err}
}

// recheckToken is verifyToken for a token verified earlier
// (Message.Verified): its times are checked again, at now.
func (e *Engine) recheckToken(t *token.Token) (credential, *token.Token, *token.Error) {
	cred := credential{scheme: "bearer", verified: true}
	if err := e.tokens.Recheck(t); err != nil {
		return cred, nil, err
	}
	c := *t
	return cred, &c, nil
}

// applyEffects carries out what the policy asked for.
func (e *Engine) applyEffects(ctx context.Context, effects []policy.Effect, now time.Time, run *run) error {
	for _, eff := range effects {
		r := eff.Revoke
		if !run.writes(WriteRevocation, fmt.Sprintf("revoke %s of %s (%s) was not written", r.Kind, r.Issuer, r.Reason)) {
			continue
		}
		if e.state == nil {
			return errors.New("the policy asked for a revocation but no state store is configured")
		}
		stored, err := e.state.PutRevocation(ctx, store.Revocation{
			Kind: store.Kind(r.Kind), Issuer: r.Issuer, Value: r.Value, Reason: r.Reason,
			CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(e.revocations),
		})
		if err != nil {
			return fmt.Errorf("apply effect revoke %s: %w", r.Kind, err)
		}
		e.logger.Info("revocation by decision", "id", stored.ID, "kind", stored.Kind, "iss", stored.Issuer, "reason", stored.Reason)
	}
	return nil
}

// fail turns an error into the deny every failure is.
func (e *Engine) fail(d *Decision, err error) (*Decision, error) {
	deny(d, 500, CodePolicyError, "the policy could not make a decision")
	return d, err
}

// failOrUnavailable is fail, except for a decision that failed because a
// check could not reach the shared state and was configured to deny then:
// that is a deny with reason state_unavailable, status 503; and for one
// that found no room, ran out of time or lost its caller (interrupted).
func (e *Engine) failOrUnavailable(ctx context.Context, d *Decision, err error, notes *store.Notes) (*Decision, error) {
	if e.interrupted(ctx, d, err) {
		e.logger.Debug("decision interrupted", "decision_id", d.ID, "reason", d.Reasons[0].Code, "error", err)
		return d, nil
	}
	if !errors.Is(err, store.ErrUnavailable) && !notes.Denied() {
		return e.fail(d, err)
	}
	e.logger.Warn("decision denied: shared state unavailable", "decision_id", d.ID, "error", err)
	deny(d, 503, CodeStateUnavailable, "a check needs the shared state, which is unavailable")
	return d, nil
}

// Failed is the decision a transport answers when it has none (the engine
// always returns one): the same deny as a policy error.
func Failed() *Decision {
	d := &Decision{}
	deny(d, 500, CodePolicyError, "the policy could not make a decision")
	return d
}

// deny makes d a deny that Go decided, with one reason and nothing else.
func deny(d *Decision, status int, code, message string) {
	d.Allow = false
	d.Status = status
	d.Reasons = []policy.Reason{{Code: code, Message: message}}
	d.Warnings = []policy.Reason{}
	d.Headers = nil
	d.UpstreamHeaders = nil
	d.Token = nil
}

// unavailableWarnings are the warnings of the checks that were let through
// while the shared state was unavailable, one per check.
func unavailableWarnings(notes *store.Notes) []policy.Reason {
	var out []policy.Reason
	seen := map[store.Check]bool{}
	for _, n := range notes.Entries() {
		if !n.Allowed || seen[n.Check] {
			continue
		}
		seen[n.Check] = true
		out = append(out, policy.Reason{
			Code:    CodeStateUnavailable,
			Message: fmt.Sprintf("the %s check was skipped: the shared state is unavailable", n.Check),
		})
	}
	return out
}

func nonNil(rs []policy.Reason) []policy.Reason {
	if rs == nil {
		return []policy.Reason{}
	}
	return rs
}

// credential is the access token a request presents, and how.
type credential struct {
	raw    string
	scheme string // "bearer" or "dpop"
	err    *token.Error
	// verified: no raw token, one verified earlier (Message.Verified).
	verified bool
}

// extractCredential reads the Authorization header (RFC 6750 §2.1, RFC 9449
// §7.1). More than one Authorization header is a malformed request; another
// scheme (Basic, ...) presents no access token.
func extractCredential(h map[string][]string) credential {
	vals := h["authorization"]
	switch {
	case len(vals) == 0:
		return credential{}
	case len(vals) > 1:
		return credential{err: &token.Error{Code: CodeRequestInvalid, Message: "more than one Authorization header"}}
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	var c credential
	switch strings.ToLower(scheme) {
	case "bearer":
		c.scheme = "bearer"
	case "dpop":
		c.scheme = "dpop"
	default:
		return credential{}
	}
	c.raw = strings.TrimLeft(rest, " ")
	if c.raw == "" {
		c.err = &token.Error{Code: token.CodeTokenMalformed, Message: "empty access token"}
	}
	return c
}

// CodeRequestInvalid is the reason for a request that presents its
// credentials in a way OAuth forbids (RFC 6750 invalid_request, status 400).
const CodeRequestInvalid = "request_invalid"

// CodeRequestPathInvalid is the reason for a request whose path is refused
// by the one path normalisation (uri.NormalizePath) or, for ";" path
// parameters, by the policy when the route does not accept them (400).
const CodeRequestPathInvalid = "request_path_invalid"

// NewID returns a random 128-bit decision id as 32 hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
