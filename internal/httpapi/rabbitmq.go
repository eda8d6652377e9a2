package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

// RabbitMQ configures the endpoints of RabbitMQ's HTTP auth backend
// (rabbitmq_auth_backend_http): /v1/rabbitmq/user, /vhost, /resource and
// /topic. A client connects with its token's subject as the username and
// the access token as the password. RabbitMQ sends the password to /user
// only: there the token is verified and decided (connect) and, allowed,
// kept (its hash and verified claims, until it expires); the later checks
// carry the username alone and are decided for the tokens kept for that
// subject, so that a revoked or expired token stops at the next check.
type RabbitMQ struct {
	// Credential is the HTTP Basic credential RabbitMQ calls with, as
	// username:password (see ParseRabbitMQCredential). Required: without
	// it the endpoints are not served.
	Credential string
	// Tokens verifies the password of /user into the token kept for the
	// later checks (the engine's verifier: the second verification is a
	// cache hit).
	Tokens RabbitMQTokens
	// Tags are the user tags of an allowed /user answer ("allow management").
	Tags []string
	// MaxTokens, MaxTokensPerSubject and MaxTokenAge bound the tokens
	// kept (see config.RabbitMQ).
	MaxTokens           int
	MaxTokensPerSubject int
	MaxTokenAge         time.Duration
	// Now is the clock of the tokens kept; time.Now when nil.
	Now func() time.Time
}

// RabbitMQTokens verifies access tokens; *token.Verifier is the one in use.
type RabbitMQTokens interface {
	Verify(ctx context.Context, raw string) (*token.Token, error)
}

// RabbitMQBroker is the broker name of every message RabbitMQ asks about.
const RabbitMQBroker = "rabbitmq"

// Bounds of a RabbitMQ auth request, checked before anything is decided.
// RabbitMQ's own limits are lower: names, routing keys and vhosts are
// AMQP short strings (255 bytes).
const (
	// MaxRabbitMQBody bounds a POST body (a form with a token in it).
	MaxRabbitMQBody = token.MaxTokenSize + 4<<10
	// MaxRabbitMQFields bounds the form's fields: RabbitMQ adds tags, ip,
	// variable_map.* and, for some protocols, client_id to the ones read.
	MaxRabbitMQFields = 32
	// MaxRabbitMQUsername bounds the username (the token's subject).
	MaxRabbitMQUsername = 512
	// MaxRabbitMQName bounds a vhost, an exchange or queue name and a
	// routing key.
	MaxRabbitMQName = 255
	// maxRabbitMQOther bounds a field the endpoints do not read.
	maxRabbitMQOther = 1024
)

// errRabbitMQCredential is a credential file RabbitMQ could not send as is.
var errRabbitMQCredential = errors.New("the RabbitMQ credential must be username:password, of letters, digits and -._~ only (so that the auth_http URLs carry it unescaped), with a password of at least 32 characters")

// ParseRabbitMQCredential checks the content of
// messaging.rabbitmq.credential_file: username:password, both of URL
// unreserved characters (RabbitMQ puts them in the auth_http.*_path URLs,
// whose userinfo its HTTP client sends as HTTP Basic without decoding),
// the password at least MinClientSecretLen characters.
func ParseRabbitMQCredential(s string) error {
	user, pass, ok := strings.Cut(s, ":")
	if !ok || user == "" || len(user) > MaxClientIDLen || len(pass) < MinClientSecretLen || len(pass) > MaxClientSecretLen ||
		!unreserved(user) || !unreserved(pass) {
		return errRabbitMQCredential
	}
	return nil
}

// unreserved reports whether s holds only RFC 3986 unreserved characters.
func unreserved(s string) bool {
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// rabbitMQ serves the four endpoints.
type rabbitMQ struct {
	cfg      RabbitMQ
	digest   [sha256.Size]byte
	answer   string // "allow" and the tags
	decider  Decider
	tokens   *verifiedTokens
	logger   *slog.Logger
	observer observer
	now      func() time.Time
}

func newRabbitMQ(cfg RabbitMQ, decider Decider, logger *slog.Logger, obs observer) *rabbitMQ {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	answer := "allow"
	if len(cfg.Tags) > 0 {
		answer += " " + strings.Join(cfg.Tags, " ")
	}
	return &rabbitMQ{
		cfg: cfg, digest: sha256.Sum256([]byte(cfg.Credential)), answer: answer, decider: decider,
		tokens: newVerifiedTokens(cfg.MaxTokens, cfg.MaxTokensPerSubject, cfg.MaxTokenAge),
		logger: logger, observer: obs, now: cfg.Now,
	}
}

// mountRabbitMQ serves /v1/rabbitmq/* when a credential is set: a decision
// API is never open.
func mountRabbitMQ(r chi.Router, cfg RabbitMQ, decider Decider, logger *slog.Logger, obs observer) {
	if cfg.Credential == "" || cfg.Tokens == nil {
		logger.Warn("the RabbitMQ endpoints are off: they need a credential and a token verifier")
		return
	}
	rb := newRabbitMQ(cfg, decider, logger, obs)
	r.Route("/v1/rabbitmq", func(r chi.Router) {
		r.Use(rb.authenticate)
		for path, h := range map[string]http.HandlerFunc{
			"/user": rb.user, "/vhost": rb.vhost, "/resource": rb.resource, "/topic": rb.topic,
		} {
			r.Get(path, h)
			r.Post(path, h)
		}
	})
}

// authenticate admits RabbitMQ alone: exactly one Authorization header,
// HTTP Basic, whose username:password matches the credential (compared as
// SHA-256 digests in constant time). Anyone else gets 401, never an answer
// RabbitMQ could take for allow.
func (rb *rabbitMQ) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rb.authentic(r.Header.Values("Authorization")) {
			rb.observer.rejected(http.StatusUnauthorized)
			w.Header().Set("WWW-Authenticate", `Basic realm="tokenguard-rabbitmq"`)
			writeProblem(w, Problem{Type: TypeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
				Detail: "only the RabbitMQ broker, with the credential of messaging.rabbitmq.credential_file, may ask"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rb *rabbitMQ) authentic(h []string) bool {
	given := ""
	if len(h) == 1 && len(h[0]) <= maxAuthorizationLen {
		if scheme, param, ok := strings.Cut(h[0], " "); ok && strings.EqualFold(scheme, "Basic") {
			if raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(param)); err == nil {
				given = string(raw)
			}
		}
	}
	d := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(d[:], rb.digest[:]) == 1 && given != ""
}

// rabbitMQRequest is the part of an auth request the endpoints read.
type rabbitMQRequest struct {
	Username, Password, VHost, IP          string
	Resource, Name, Permission, RoutingKey string
}

// errRabbitMQForm marks a request the broker got wrong (400).
var errRabbitMQForm = errors.New("invalid RabbitMQ auth request")

func formError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRabbitMQForm, fmt.Sprintf(format, args...))
}

// readRabbitMQForm reads the fields of a RabbitMQ auth request: the query
// of a GET, or the form body of a POST (auth_http.http_method), never both.
// A field given twice, a malformed encoding, too many fields or too large
// a value is an error; fields the endpoints do not read (tags,
// variable_map.*, client_id) are bounded and ignored.
func readRabbitMQForm(method, contentType, rawQuery string, body io.Reader) (url.Values, error) {
	var raw string
	switch method {
	case http.MethodGet:
		if len(rawQuery) > MaxRabbitMQBody {
			return nil, formError("the query exceeds %d bytes", MaxRabbitMQBody)
		}
		if body != nil {
			if n, _ := io.ReadFull(body, make([]byte, 1)); n > 0 {
				return nil, formError("a GET carries its fields in the query, not a body")
			}
		}
		raw = rawQuery
	case http.MethodPost:
		if rawQuery != "" {
			return nil, formError("a POST carries its fields in the body, not the query")
		}
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, formError("the body must be application/x-www-form-urlencoded")
		}
		b, err := io.ReadAll(io.LimitReader(body, MaxRabbitMQBody+1))
		if err != nil {
			return nil, formError("the body could not be read")
		}
		if len(b) > MaxRabbitMQBody {
			return nil, formError("the body exceeds %d bytes", MaxRabbitMQBody)
		}
		raw = string(b)
	default:
		return nil, formError("method %s: use GET or POST", method)
	}
	if n := strings.Count(raw, "&") + 1; n > MaxRabbitMQFields {
		return nil, formError("more than %d fields", MaxRabbitMQFields)
	}
	form, err := url.ParseQuery(raw)
	if err != nil {
		return nil, formError("the fields are not form-encoded")
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, formError("%s is given more than once", truncateField(k))
		}
		if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
			return nil, formError("%s is not UTF-8", truncateField(k))
		}
		if limit := fieldLimit(k); len(vs[0]) > limit {
			return nil, formError("%s exceeds %d bytes", truncateField(k), limit)
		}
	}
	return form, nil
}

// fieldLimit is the largest value a field may hold.
func fieldLimit(name string) int {
	switch name {
	case "password":
		return token.MaxTokenSize
	case "username":
		return MaxRabbitMQUsername
	case "vhost", "name", "routing_key":
		return MaxRabbitMQName
	default:
		return maxRabbitMQOther
	}
}

func truncateField(k string) string {
	if len(k) > 32 || !utf8.ValidString(k) {
		return strconv.Quote(truncate(k, 32))
	}
	return k
}

// parseRabbitMQRequest reads the form of r and checks the fields path
// needs: every endpoint a username; /user a password; /vhost, /resource
// and /topic a vhost; /resource a resource (exchange or queue), a name
// and a permission (configure, write or read); /topic the resource topic,
// the exchange's name, write or read and the routing key.
func parseRabbitMQRequest(path string, form url.Values) (rabbitMQRequest, error) {
	q := rabbitMQRequest{
		Username: form.Get("username"), Password: form.Get("password"), VHost: form.Get("vhost"), IP: form.Get("ip"),
		Resource: form.Get("resource"), Name: form.Get("name"), Permission: form.Get("permission"), RoutingKey: form.Get("routing_key"),
	}
	if q.Username == "" {
		return q, formError("username is required")
	}
	if path == "user" {
		if q.Password == "" {
			return q, formError("password is required")
		}
		return q, nil
	}
	if _, ok := form["vhost"]; !ok {
		return q, formError("vhost is required")
	}
	switch path {
	case "resource":
		if q.Resource != "exchange" && q.Resource != "queue" {
			return q, formError("resource must be exchange or queue")
		}
	case "topic":
		if q.Resource != "topic" {
			return q, formError("resource must be topic")
		}
		if _, ok := form["routing_key"]; !ok {
			return q, formError("routing_key is required")
		}
	default:
		return q, nil
	}
	if _, ok := form["name"]; !ok {
		return q, formError("name is required")
	}
	switch q.Permission {
	case "configure", "write", "read":
	default:
		return q, formError("permission must be configure, write or read")
	}
	if path == "topic" && q.Permission == "configure" {
		return q, formError("permission must be write or read for a topic")
	}
	return q, nil
}

// RabbitMQOperation maps a RabbitMQ permission check to the operation
// decided and the destination it is on:
//
//	exchange write     → publish    the exchange  (basic.publish)
//	exchange read      → subscribe  the exchange  (queue.bind from it)
//	queue write        → subscribe  the queue     (queue.bind into it)
//	queue read         → consume    the queue     (basic.consume, basic.get, queue.purge)
//	exchange, queue configure → configure the name (declare, delete)
//	topic write        → publish    the routing key (to a topic exchange)
//	topic read         → subscribe  the binding key (queue.bind to a topic exchange)
//
// A publish is decided on the exchange, and again on its routing key when
// the exchange is a topic exchange; a subscription on the exchange, the
// queue and, for a topic exchange, the binding key.
func RabbitMQOperation(resource, permission, name, routingKey string) (operation, destination string) {
	switch {
	case permission == "configure":
		return decision.OpConfigure, name
	case resource == "topic" && permission == "write":
		return decision.OpPublish, routingKey
	case resource == "topic":
		return decision.OpSubscribe, routingKey
	case resource == "exchange" && permission == "write":
		return decision.OpPublish, name
	case resource == "queue" && permission == "read":
		return decision.OpConsume, name
	default: // exchange read, queue write: a binding
		return decision.OpSubscribe, name
	}
}

// rabbitMQContext is the context object of a check: what RabbitMQ asked,
// for policies that look further than the destination (the exchange of a
// routing key, for one).
func rabbitMQContext(q rabbitMQRequest) ast.Object {
	rb := ast.NewObject()
	for _, kv := range [][2]string{{"resource", q.Resource}, {"name", q.Name}, {"permission", q.Permission}} {
		if kv[1] != "" {
			rb.Insert(ast.StringTerm(kv[0]), ast.StringTerm(kv[1]))
		}
	}
	return ast.NewObject(ast.Item(ast.StringTerm("rabbitmq"), ast.NewTerm(rb)))
}

// read parses and checks the request of path; a problem is answered 400.
func (rb *rabbitMQ) read(w http.ResponseWriter, r *http.Request, path string) (rabbitMQRequest, bool) {
	form, err := readRabbitMQForm(r.Method, r.Header.Get("Content-Type"), r.URL.RawQuery, r.Body)
	var q rabbitMQRequest
	if err == nil {
		q, err = parseRabbitMQRequest(path, form)
	}
	if err != nil {
		rb.observer.rejected(http.StatusBadRequest)
		writeProblem(w, *badRequest(strings.TrimPrefix(err.Error(), errRabbitMQForm.Error()+": ")))
		return q, false
	}
	return q, true
}

// user authenticates a connection: the password is the access token, the
// username its subject. The token is decided as a connect; allowed, it is
// kept for the later checks of that subject.
func (rb *rabbitMQ) user(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q, ok := rb.read(w, r, "user")
	if !ok {
		return
	}
	// Verified first (the engine's verification is then a cache hit), so
	// that a token of another subject is refused before it is decided.
	tok, verr := rb.cfg.Tokens.Verify(r.Context(), q.Password)
	if verr == nil && tok.Subject != q.Username {
		rb.logger.Info("rabbitmq: username is not the token's subject", "token_hash", tok.Hash)
		rb.writeAnswer(w, false, "", "")
		return
	}
	dec, err := rb.decide(r.Context(), decision.RawMessage{
		Broker: RabbitMQBroker, Operation: decision.OpConnect, VHost: q.VHost, Token: q.Password, RemoteIP: rabbitMQIP(q.IP),
	})
	if dec == nil {
		rb.refuse(w, err)
		return
	}
	allow := err == nil && dec.Allow && verr == nil && tok.Hash == dec.TokenHash
	var kerr error
	if allow {
		kerr = rb.tokens.remember(tok, rb.now())
	}
	if errors.Is(kerr, errOtherPrincipal) {
		rb.logger.Info("rabbitmq: connection refused, the subject's kept tokens are another issuer's or client's", "token_hash", tok.Hash,
			"decision_id", dec.ID)
		rb.writeAnswer(w, false, "", dec.ID)
		rb.observer.decided(w, r, dec, err, start)
		return
	}
	if kerr != nil {
		rb.logger.Warn("rabbitmq: connection refused, the verified tokens kept reached messaging.rabbitmq.max_tokens")
		w.Header().Set("Retry-After", "1")
		writeProblem(w, Problem{Type: TypeNotReady, Title: "Service Unavailable", Status: http.StatusServiceUnavailable,
			Detail:     "too many verified tokens are kept (messaging.rabbitmq.max_tokens); retry later",
			Extensions: map[string]any{"decision_id": dec.ID}})
		rb.observer.decided(w, r, dec, err, start)
		return
	}
	rb.writeAnswer(w, allow, rb.answer, dec.ID)
	rb.logDecision("user", dec, allow)
	rb.observer.decided(w, r, dec, err, start)
}

// vhost decides a connect for the tokens kept for the username.
func (rb *rabbitMQ) vhost(w http.ResponseWriter, r *http.Request) {
	q, ok := rb.read(w, r, "vhost")
	if !ok {
		return
	}
	rb.decideKept(w, r, q, decision.RawMessage{Broker: RabbitMQBroker, Operation: decision.OpConnect, VHost: q.VHost, RemoteIP: rabbitMQIP(q.IP)})
}

// resource decides an exchange or queue permission for the tokens kept
// for the username.
func (rb *rabbitMQ) resource(w http.ResponseWriter, r *http.Request) {
	q, ok := rb.read(w, r, "resource")
	if !ok {
		return
	}
	rb.decideOn(w, r, q)
}

// topic decides a routing key on a topic exchange for the tokens kept for
// the username.
func (rb *rabbitMQ) topic(w http.ResponseWriter, r *http.Request) {
	q, ok := rb.read(w, r, "topic")
	if !ok {
		return
	}
	rb.decideOn(w, r, q)
}

func (rb *rabbitMQ) decideOn(w http.ResponseWriter, r *http.Request, q rabbitMQRequest) {
	if q.Name == "" && q.Resource == "exchange" {
		q.Name = "amq.default" // as RabbitMQ names the default exchange
	}
	op, dest := RabbitMQOperation(q.Resource, q.Permission, q.Name, q.RoutingKey)
	if dest == "" {
		// An empty routing key or queue name names nothing a destination
		// could grant.
		rb.writeAnswer(w, false, "", "")
		return
	}
	rb.decideKept(w, r, q, decision.RawMessage{Broker: RabbitMQBroker, Operation: op, Destination: dest, VHost: q.VHost,
		Context: rabbitMQContext(q)})
}

// decideKept decides msg for each token kept for q.Username, the one seen
// last first, and allows when one of them is allowed. No token kept (never
// connected, expired, or another replica's) is a deny.
func (rb *rabbitMQ) decideKept(w http.ResponseWriter, r *http.Request, q rabbitMQRequest, msg decision.RawMessage) {
	start := time.Now()
	kept := rb.tokens.of(q.Username, rb.now())
	if len(kept) == 0 {
		rb.logger.Debug("rabbitmq: no verified token is kept for the user")
		rb.writeAnswer(w, false, "", "")
		return
	}
	// Every decision is logged, once the answer is written.
	type made struct {
		dec *decision.Decision
		err error
	}
	var decided []made
	allow := false
	for _, tok := range kept {
		msg.Verified = tok
		dec, err := rb.decide(r.Context(), msg)
		if dec == nil {
			rb.refuse(w, err)
			return
		}
		decided = append(decided, made{dec, err})
		if err == nil && dec.Allow {
			allow = true
			break
		}
		if hasReason(dec, token.CodeExpired) {
			rb.tokens.forget(q.Username, tok.Hash)
		}
	}
	last := decided[len(decided)-1].dec
	rb.writeAnswer(w, allow, "allow", last.ID)
	rb.logDecision(msg.Operation, last, allow)
	for _, m := range decided {
		rb.observer.decided(w, r, m.dec, m.err, start)
	}
}

// decide builds the message and decides it. A message that does not
// validate (a client's routing key with control characters, a password
// with white space) is no decision: nil and the error saying why.
// Otherwise there is a decision, a deny when the error is set.
func (rb *rabbitMQ) decide(ctx context.Context, raw decision.RawMessage) (*decision.Decision, error) {
	req, err := decision.NewMessage(raw)
	if err != nil {
		return nil, err
	}
	d, err := rb.decider.Decide(ctx, req)
	if d == nil {
		d = decision.Failed()
		d.ID = decision.NewID()
		if err == nil {
			err = errors.New("no decision")
		}
	}
	if err != nil {
		rb.logger.Error("rabbitmq: decision failed", "decision_id", d.ID, "error", err)
	}
	return d, err
}

// refuse answers deny to a check that could not be asked of the policy
// (see decide): what the client sent, not an error of the decision point.
func (rb *rabbitMQ) refuse(w http.ResponseWriter, err error) {
	rb.logger.Info("rabbitmq: denied a check the policy cannot be asked", "error", err)
	rb.observer.rejected(http.StatusBadRequest)
	rb.writeAnswer(w, false, "", "")
}

// logDecision logs an answer at debug level; the decision log has the
// rest.
func (rb *rabbitMQ) logDecision(check string, dec *decision.Decision, allow bool) {
	if !rb.logger.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	codes := make([]string, len(dec.Reasons))
	for i, r := range dec.Reasons {
		codes[i] = r.Code
	}
	rb.logger.Debug("rabbitmq: answered", "check", check, "allow", allow, "decision_id", dec.ID, "reasons", codes)
}

func hasReason(d *decision.Decision, code string) bool {
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// writeAnswer answers RabbitMQ in plain text: allowed (on /user "allow"
// and the tags; elsewhere RabbitMQ takes "allow" alone) or "deny". The
// reasons are in the decision log, under the decision id.
func (rb *rabbitMQ) writeAnswer(w http.ResponseWriter, allow bool, allowed, id string) {
	body := "deny"
	if allow {
		body = allowed
	}
	if id != "" {
		w.Header().Set("X-Decision-Id", id)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// rabbitMQIP is the client address RabbitMQ reports ("unknown" or
// nothing: none).
func rabbitMQIP(ip string) string {
	if _, err := netip.ParseAddr(ip); err != nil {
		return ""
	}
	return ip
}
