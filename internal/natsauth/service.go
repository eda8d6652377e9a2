// Package natsauth makes the PDP a NATS auth callout service (nats-server
// 2.10 or later). The server sends an authorization request for every
// connecting client; the service decides a connect with the access token
// the client gave as its auth_token or password, and answers with a user
// JWT, signed by the configured account issuer key, whose publish and
// subscribe permissions are the NATS destinations (data.pdp.destinations)
// the token may use and whose expiry is the earlier of the token's exp and
// messaging.max_connection_lifetime (for an introspected token, also when
// its introspection answer stops being trusted). It keeps the live connections it
// authorized and closes, through the system account, those whose token,
// session or subject is revoked.
package natsauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// Broker is the broker name of the decisions the service asks for, and of
// the destinations it grants.
const Broker = "nats"

// Reason codes the service answers with itself (the others come from the
// decisions).
const (
	// CodeOverloaded: the service tracks max_connections live connections
	// already, or has no room for another request; the client may retry.
	CodeOverloaded = decision.CodeOverloaded
	// CodeRequestInvalid: the connect could not be made into a decision
	// request (a token with white space, an unreadable client address).
	CodeRequestInvalid = decision.CodeRequestInvalid
)

// Decider decides a request; *decision.Engine is the one in use.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*decision.Decision, error)
}

// TokenVerifier verifies an access token; *token.Verifier is the one in
// use. The engine verified the token just before (the answer is cached):
// the service asks again for its claims (exp, sid) and decides the
// destinations with it.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Token, error)
}

// Revocations tells whether a token was revoked: by its jti, session,
// subject or client. The store in use answers.
type Revocations interface {
	CheckRevocation(ctx context.Context, ref store.TokenRef) (store.Revocation, bool, error)
}

// DecisionLogger writes decision-log entries; *decisionlog.Logger (or the
// shadowing one) is the one in use.
type DecisionLogger interface {
	Log(ctx context.Context, e decisionlog.Entry)
}

// DecisionMetrics counts decisions; *metrics.Metrics is the one in use.
type DecisionMetrics interface {
	ObserveDecision(dec *decision.Decision, err error, elapsed time.Duration)
}

// Options configure a Service.
type Options struct {
	// Issuer is the account key pair (seed SA...) that signs the answers
	// and user JWTs; its public key is the server's auth_callout.issuer.
	Issuer nkeys.KeyPair
	// XKey, when set, is the curve key pair whose public key is the
	// server's auth_callout.xkey: requests and answers are encrypted.
	XKey nkeys.KeyPair
	// Account is the account authorized clients are placed in.
	Account string
	// Destinations gives the active policy version's destination table
	// (every broker's; the NATS entries are used), in order.
	Destinations func() []Destination
	// MaxLifetime caps a user JWT's life (messaging.max_connection_lifetime).
	MaxLifetime time.Duration
	// MaxConnections bounds the live connections tracked.
	MaxConnections int
	// CheckInterval is the pause between revocation checks.
	CheckInterval time.Duration
	// DecisionLog, when set, receives the connect decision of every
	// request (not the decisions on destinations, which are counted in
	// pdp_nats_grant_decisions_total: they would be one per entry and
	// operation for every connection).
	DecisionLog DecisionLogger
	// Metrics, when set, counts the connect decisions with the others
	// (pdp_decisions_total and friends).
	Metrics DecisionMetrics
	// Logger; nil discards.
	Logger *slog.Logger
	// Now; nil is time.Now.
	Now func() time.Time
}

// Service answers authorization requests and closes revoked connections.
// It is safe for concurrent use.
type Service struct {
	decider      Decider
	verifier     TokenVerifier
	destinations func() []Destination
	revs         Revocations
	opts         Options
	issuer       string // the issuer's public key
	logger       *slog.Logger
	now          func() time.Time
	conns        *tracker
	counts       *counters
	// lastCheck is the unix-nano time of the last revocation check.
	lastCheck atomic.Int64
	// connected says whether Run's connections are up.
	connected atomic.Bool
}

// New checks the options and returns a Service.
func New(decider Decider, verifier TokenVerifier, revs Revocations, opts Options) (*Service, error) {
	if opts.Issuer == nil {
		return nil, errors.New("natsauth: an issuer key is required")
	}
	pub, err := opts.Issuer.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, errors.New("natsauth: the issuer key must be an account key (seed SA...)")
	}
	if opts.XKey != nil {
		if xpub, err := opts.XKey.PublicKey(); err != nil || !nkeys.IsValidPublicCurveKey(xpub) {
			return nil, errors.New("natsauth: the xkey must be a curve key (seed SX...)")
		}
	}
	if opts.Account == "" {
		return nil, errors.New("natsauth: an account is required")
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = 5 * time.Minute
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 100_000
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{decider: decider, verifier: verifier, destinations: opts.Destinations, revs: revs, opts: opts, issuer: pub,
		logger: opts.Logger, now: opts.Now, conns: newTracker(opts.MaxConnections), counts: newCounters()}, nil
}

// Issuer is the public key of the issuer key (the server's
// auth_callout.issuer).
func (s *Service) Issuer() string { return s.issuer }

// Authorize answers one authorization request: data is the message as it
// arrived, serverXKey its Nats-Server-Xkey header. The answer is the signed
// (and, for an encrypted request, encrypted) authorization response; an
// error means the request cannot be answered at all (it is not one a
// server sent, or it is not for this service) and the caller answers with
// an empty message, which the server takes as a refusal.
func (s *Service) Authorize(ctx context.Context, data []byte, serverXKey string) ([]byte, error) {
	started := s.now()
	req, err := parseRequest(data, serverXKey, s.opts.XKey)
	if err != nil {
		s.counts.authorizations[resultInvalid].Add(1)
		return nil, err
	}
	user, codes, c := s.decide(ctx, req)
	result := resultAllow
	switch {
	case user == "" && slices.Contains(codes, CodeOverloaded):
		result = resultOverloaded
	case user == "":
		result = resultDeny
	}
	s.counts.authorizations[result].Add(1)
	s.counts.observe(s.now().Sub(started))
	if user == "" {
		s.logger.Info("nats connect refused", "reasons", codes, "token_sha256", c.hash, "server_id", req.ServerID, "cid", req.ClientID,
			"remote_ip", req.Host)
	} else {
		s.logger.Debug("nats connect authorized", "token_sha256", c.hash, "server_id", req.ServerID, "cid", req.ClientID,
			"expires", c.expires, "iss", c.ref.Issuer, "sub", c.ref.Subject)
	}
	return s.respond(req, user, strings.Join(codes, ", "))
}

// decide decides the connect and, when it is allowed, the destinations:
// the signed user JWT, or "" and the reason codes of the refusal.
func (s *Service) decide(ctx context.Context, req *authRequest) (string, []string, liveConn) {
	var c liveConn
	if req.Token != "" {
		c.hash = token.HashToken(req.Token)
	}
	if s.conns.len() >= s.opts.MaxConnections && s.conns.dropExpired(s.now()) == 0 {
		return "", []string{CodeOverloaded}, c
	}
	msg, err := decision.NewMessage(decision.RawMessage{Broker: Broker, Operation: decision.OpConnect, Token: req.Token, RemoteIP: req.Host})
	if err != nil {
		return "", []string{CodeRequestInvalid}, c
	}
	start := time.Now()
	d, err := s.decider.Decide(ctx, msg)
	if err != nil {
		s.logger.Error("nats connect decision failed", "error", err, "token_sha256", c.hash)
	}
	s.observe(ctx, d, err, start, req.ServerID)
	if d == nil || !d.Allow {
		return "", reasonCodes(d), c
	}
	tok, err := s.verifier.Verify(ctx, req.Token)
	if err != nil {
		// Allowed a moment ago: the token expired in between, or the
		// verifier failed. Either way, no JWT.
		var te *token.Error
		if errors.As(err, &te) {
			return "", []string{te.Code}, c
		}
		return "", []string{decision.CodePolicyError}, c
	}
	now := s.now()
	expires := now.Add(s.opts.MaxLifetime)
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(expires) {
		expires = tok.ExpiresAt
	}
	// An introspection answer is trusted for the issuer's cache_ttl only:
	// after, the authorization server may have deactivated the token.
	if !tok.FreshUntil.IsZero() && tok.FreshUntil.Before(expires) {
		expires = tok.FreshUntil
	}
	if !expires.After(now.Add(time.Second)) {
		// The JWT's expiry has a precision of a second: one that would
		// expire within it is not worth issuing.
		return "", []string{token.CodeExpired}, c
	}
	c.ref, c.expires = revocationRef(tok), expires
	pub, sub := s.grants(ctx, tok, req.Host)
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = s.opts.Account
	uc.IssuedAt = now.Unix()
	uc.Expires = expires.Unix()
	setPermission(&uc.Pub, pub)
	setPermission(&uc.Sub, sub)
	signed, err := uc.Encode(s.opts.Issuer)
	if err != nil {
		s.logger.Error("nats user JWT could not be signed", "error", err)
		return "", []string{decision.CodePolicyError}, c
	}
	if !s.conns.add(connKey{server: req.ServerID, cid: req.ClientID}, c, now) {
		return "", []string{CodeOverloaded}, c
	}
	return signed, nil, c
}

// observe counts and logs the connect decision d.
func (s *Service) observe(ctx context.Context, d *decision.Decision, err error, start time.Time, serverID string) {
	elapsed := time.Since(start)
	if s.opts.Metrics != nil {
		s.opts.Metrics.ObserveDecision(d, err, elapsed)
	}
	if s.opts.DecisionLog != nil && d != nil {
		s.opts.DecisionLog.Log(ctx, decisionlog.Entry{Decision: d, Err: err, Latency: elapsed, RequestedBy: "nats:" + serverID, Time: start})
	}
}

// setPermission allows exactly the patterns: NATS reads an empty allow list
// as "everything", so with nothing granted everything is denied.
func setPermission(p *jwt.Permission, grant permission) {
	if len(grant.allow) == 0 {
		p.Deny.Add(">")
		return
	}
	p.Allow.Add(grant.allow...)
	p.Deny.Add(grant.deny...)
}

// respond signs the authorization response for req: the user JWT, or the
// error (reason codes) when user is "".
func (s *Service) respond(req *authRequest, user, reason string) ([]byte, error) {
	cr := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	cr.Audience = req.ServerID
	if user != "" {
		cr.Jwt = user
	} else {
		if reason == "" {
			reason = "denied"
		}
		cr.Error = reason
	}
	signed, err := cr.Encode(s.opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("natsauth: sign the response: %w", err)
	}
	if req.ServerXKey == "" {
		return []byte(signed), nil
	}
	sealed, err := s.opts.XKey.Seal([]byte(signed), req.ServerXKey)
	if err != nil {
		return nil, fmt.Errorf("natsauth: encrypt the response: %w", err)
	}
	return sealed, nil
}

// reasonCodes are the codes of a deny; policy_error when there are none.
func reasonCodes(d *decision.Decision) []string {
	if d == nil || len(d.Reasons) == 0 {
		return []string{decision.CodePolicyError}
	}
	out := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		if !slices.Contains(out, r.Code) {
			out = append(out, r.Code)
		}
	}
	return out
}

// revocationRef is what the store needs to find a revocation of tok, read
// as rego/lib/revocation.rego reads it: the jti, or "sha256:" and the
// token's hash for a token without one (what POST /v1/revoke stores).
func revocationRef(tok *token.Token) store.TokenRef {
	jti := tok.JTI
	if jti == "" {
		jti = "sha256:" + tok.Hash
	}
	ref := store.TokenRef{Issuer: tok.Issuer, Subject: tok.Subject, JTI: jti, ClientID: tok.ClientID, IssuedAt: tok.IssuedAt}
	if tok.Claims != nil {
		if t := tok.Claims.Get(ast.InternedTerm("sid")); t != nil {
			if v, ok := t.Value.(ast.String); ok {
				ref.SessionID = string(v)
			}
		}
	}
	return ref
}
