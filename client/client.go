// Package client asks a tokenguard PDP for decisions: a client for
// POST /v1/decide, for services that have no gateway in front and for
// background jobs, and an http.Handler middleware that asks about each
// request of a Go service before it reaches the service's handler.
//
// Every failure is a deny. Decide returns a Decision in every case; when it
// also returns an error (the PDP could not be reached, answered something
// that is not a decision, took too long, or was overloaded) that Decision
// has Allow false, so code that looks only at Allow still fails closed.
//
// A decision is not retried here: a request with a DPoP proof spends the
// proof's jti, and asking again would be answered as a replay.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout          = 2 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultMaxIdleConns     = 64
)

// GatewayHeader carries the gateway credential (the PDP's
// decide.auth.credential_file) on every call.
const GatewayHeader = "X-Tokenguard-Gateway"

// CodeOverloaded is the reason code of an overloaded answer: the PDP had
// no room to evaluate the policy in time. It may be asked again after
// Retry-After, here or on another replica.
const CodeOverloaded = "overloaded"

// Errors, checked with errors.Is. Every error Decide returns wraps one of
// them, or a transport error (a *url.Error, context.DeadlineExceeded on a
// timeout).
var (
	// ErrOverloaded: the PDP answered an overloaded deny (status 503,
	// Retry-After), or HTTP 503. The error is an *OverloadedError.
	ErrOverloaded = errors.New("the decision point is overloaded")
	// ErrStatus: the PDP answered an HTTP status other than 200 (a problem
	// document: 400 invalid request, 401 gateway credential, 500 policy
	// error, ...). The error is a *StatusError.
	ErrStatus = errors.New("the decision point answered an error")
	// ErrNotDecision: the answer was not a decision: not JSON, too large,
	// not the shape of a decision, or an ambiguous one.
	ErrNotDecision = errors.New("the answer is not a decision")
)

// Options configure a Client. Server is required.
type Options struct {
	// Server is the PDP's base URL, e.g. "http://127.0.0.1:8181" or
	// "https://pdp.internal:8443"; /v1/decide is appended.
	Server string
	// Credential is the gateway credential the PDP checks when
	// decide.auth.credential_file is set (sent in X-Tokenguard-Gateway).
	// Use https, or a loopback or private network, when it is set.
	Credential string
	// Timeout bounds one decision, from sending the request to reading the
	// whole answer (DefaultTimeout when 0). A context deadline that comes
	// first wins.
	Timeout time.Duration
	// MaxResponseBytes bounds the answer read (DefaultMaxResponseBytes
	// when 0): a larger one is an error.
	MaxResponseBytes int64
	// MaxIdleConns is how many idle connections to the PDP are kept for
	// reuse (DefaultMaxIdleConns when 0).
	MaxIdleConns int
	// TLS configures https to the PDP: the CA that signed its
	// certificate, and a client certificate when the PDP authenticates
	// gateways by certificate (decide.auth.client_ca_file). nil: the
	// system roots.
	TLS *tls.Config
	// Transport replaces the tuned transport the client builds (for tests
	// or instrumentation). Redirects are never followed either way.
	Transport http.RoundTripper
}

// Client asks one PDP for decisions. It is safe for concurrent use and
// keeps its connections for reuse: make one and share it.
type Client struct {
	endpoint   string
	credential string
	timeout    time.Duration
	maxBytes   int64
	http       *http.Client
}

// New returns a client for the PDP at opts.Server.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server %q: must be an http or https URL without query or credentials", opts.Server)
	}
	if strings.ContainsAny(opts.Credential, "\r\n") {
		return nil, errors.New("client: the credential must be one line")
	}
	c := &Client{
		endpoint:   strings.TrimRight(u.String(), "/") + "/v1/decide",
		credential: opts.Credential,
		timeout:    opts.Timeout,
		maxBytes:   opts.MaxResponseBytes,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	rt := opts.Transport
	if rt == nil {
		idle := opts.MaxIdleConns
		if idle <= 0 {
			idle = DefaultMaxIdleConns
		}
		rt = &http.Transport{
			// Decisions go straight to the PDP, never through an
			// environment proxy that would see the tokens.
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:        opts.TLS,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           idle,
			MaxIdleConnsPerHost:    idle,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    c.timeout,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		}
	}
	c.http = &http.Client{
		Transport: rt,
		// A redirect would carry the token and the credential elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Close closes the idle connections to the PDP.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Request is an HTTP request to decide, as POST /v1/decide's "request".
type Request struct {
	// Method is the request's method (GET, POST, ...).
	Method string `json:"method"`
	// URL is the absolute URL the client called (scheme, host, path and
	// query), e.g. https://api.example.com/v1/accounts/42.
	URL string `json:"url"`
	// Headers are the request's headers, Authorization and DPoP among
	// them (any case; the PDP lower-cases names).
	Headers map[string][]string `json:"headers,omitempty"`
	// RemoteIP is the client's address, when the caller knows it.
	RemoteIP string `json:"remote_ip,omitempty"`
	// TLSClientCert is the client certificate (PEM) of an mTLS-bound
	// token's request, when the service terminates TLS itself.
	TLSClientCert string `json:"tls_client_cert,omitempty"`
	// Form holds the form fields of a token-endpoint request.
	Form map[string][]string `json:"body,omitempty"`
	// Context is free-form data the policy sees as input.context.
	Context map[string]any `json:"-"`
}

// Message is a messaging operation to decide, as POST /v1/decide's
// "message".
type Message struct {
	// Broker: "nats", "rabbitmq", "kafka", ... (lower case).
	Broker string `json:"broker"`
	// Operation: "connect", "publish", "subscribe" or "consume".
	Operation string `json:"operation"`
	// Destination is the subject, exchange, queue or topic; empty for a
	// connect.
	Destination string `json:"destination,omitempty"`
	// VHost is the RabbitMQ virtual host, when there is one.
	VHost string `json:"vhost,omitempty"`
	// Token is the access token; or leave it empty and pass
	// "authorization": {"Bearer …"} in Headers.
	Token string `json:"token,omitempty"`
	// Headers have lower-case names.
	Headers map[string][]string `json:"headers,omitempty"`
	// RemoteIP is the client's address as the broker saw it.
	RemoteIP string `json:"remote_ip,omitempty"`
	// Context is free-form data the policy sees as input.context.
	Context map[string]any `json:"-"`
}

// Decision is the PDP's answer, as POST /v1/decide gives it.
type Decision struct {
	ID    string `json:"decision_id"`
	Allow bool   `json:"allow"`
	// Status is what to answer the client on a deny (401, 403, 429, 503,
	// ...), 200 on an allow.
	Status   int      `json:"status"`
	Reasons  []Reason `json:"reasons"`
	Warnings []Reason `json:"warnings"`
	// Headers are to be passed on to the client (WWW-Authenticate,
	// DPoP-Nonce, Retry-After).
	Headers map[string]string `json:"headers"`
	// UpstreamHeaders are to be passed on to the service on an allow
	// (X-Tokenguard-Subject, -Client-Id, -Scopes, -Grant-Type, -Actor).
	UpstreamHeaders map[string]string `json:"upstream_headers"`
	// Token is the verified token the decision was about; nil when there
	// was none.
	Token  *Token `json:"token"`
	Policy Policy `json:"policy"`
}

// Reason is one reason of a deny, or one warning.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Token names the verified token a decision was about.
type Token struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	GrantType string   `json:"grant_type,omitempty"`
	Scopes    []string `json:"scopes"`
}

// Policy names the policy version and the grant module that decided.
type Policy struct {
	Revision string `json:"revision"`
	Module   string `json:"module"`
}

// Codes are the decision's reason codes, in order.
func (d *Decision) Codes() []string {
	out := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		out[i] = r.Code
	}
	return out
}

// OverloadedError is an overloaded answer. Ask again after RetryAfter
// (zero when the PDP did not say), here or on another replica.
type OverloadedError struct {
	RetryAfter time.Duration
	// DecisionID is the PDP's decision id, when it answered a decision.
	DecisionID string
}

func (e *OverloadedError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v; retry after %s", ErrOverloaded, e.RetryAfter)
	}
	return ErrOverloaded.Error()
}

func (e *OverloadedError) Unwrap() error { return ErrOverloaded }

// StatusError is an HTTP answer other than 200: its status, and the
// problem document's members when it sent one.
type StatusError struct {
	Status     int
	Type       string
	Title      string
	Detail     string
	DecisionID string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%v: HTTP %d", ErrStatus, e.Status)
	if e.Detail != "" {
		s += ": " + e.Detail
	} else if e.Title != "" {
		s += ": " + e.Title
	}
	return s
}

func (e *StatusError) Unwrap() error { return ErrStatus }

// Decide asks the PDP about an HTTP request.
//
// It always returns a Decision. With a nil error it is the PDP's decision;
// otherwise it is a deny (Allow false) with Status 503 (the PDP's own
// decision for an overloaded answer, Retry-After in Headers), 500 for a
// policy error, or 503.
func (c *Client) Decide(ctx context.Context, r *Request) (*Decision, error) {
	if r == nil {
		return failed(http.StatusInternalServerError), errors.New("client: nil request")
	}
	return c.decide(ctx, body{Request: r, Context: r.Context})
}

// DecideMessage asks the PDP about a messaging operation; the Decision is
// as Decide's.
func (c *Client) DecideMessage(ctx context.Context, m *Message) (*Decision, error) {
	if m == nil {
		return failed(http.StatusInternalServerError), errors.New("client: nil message")
	}
	return c.decide(ctx, body{Message: m, Context: m.Context})
}

// body is POST /v1/decide's body: exactly one of Request and Message.
type body struct {
	Request *Request       `json:"request,omitempty"`
	Message *Message       `json:"message,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

func (c *Client) decide(ctx context.Context, b body) (*Decision, error) {
	payload, err := json.Marshal(b)
	if err != nil {
		return failed(http.StatusInternalServerError), fmt.Errorf("client: encode the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(payload))
	if err != nil {
		return failed(http.StatusInternalServerError), fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.credential != "" {
		req.Header.Set(GatewayHeader, c.credential)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return failed(http.StatusServiceUnavailable), fmt.Errorf("client: ask the decision point: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return failed(http.StatusServiceUnavailable), fmt.Errorf("client: read the answer: %w", err)
	}
	if int64(len(raw)) > c.maxBytes {
		return failed(http.StatusServiceUnavailable), fmt.Errorf("%w: larger than %d bytes", ErrNotDecision, c.maxBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return statusAnswer(resp, raw)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return failed(http.StatusServiceUnavailable), fmt.Errorf("%w: Content-Type is %q", ErrNotDecision, resp.Header.Get("Content-Type"))
	}
	d, err := ParseDecision(raw)
	if err != nil {
		return failed(http.StatusServiceUnavailable), err
	}
	if !d.Allow && d.Status == http.StatusServiceUnavailable && slices.Contains(d.Codes(), CodeOverloaded) {
		return d, &OverloadedError{RetryAfter: retryAfter(headerValue(d.Headers, "Retry-After")), DecisionID: d.ID}
	}
	return d, nil
}

// failed is the deny returned with an error.
func failed(status int) *Decision {
	return &Decision{Status: status, Reasons: []Reason{}, Warnings: []Reason{}, Headers: map[string]string{}, UpstreamHeaders: map[string]string{}}
}

// statusAnswer turns a non-200 answer into its error.
func statusAnswer(resp *http.Response, raw []byte) (*Decision, error) {
	if resp.StatusCode == http.StatusServiceUnavailable {
		d := failed(http.StatusServiceUnavailable)
		ra := resp.Header.Get("Retry-After")
		if ra != "" && retryAfter(ra) > 0 {
			d.Headers["Retry-After"] = ra
		}
		return d, &OverloadedError{RetryAfter: retryAfter(ra), DecisionID: resp.Header.Get("X-Decision-Id")}
	}
	e := &StatusError{Status: resp.StatusCode, DecisionID: resp.Header.Get("X-Decision-Id")}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil &&
		(mt == "application/problem+json" || mt == "application/json") {
		var p struct {
			Type, Title, Detail string
			DecisionID          string `json:"decision_id"`
		}
		if json.Unmarshal(raw, &p) == nil {
			e.Type, e.Title, e.Detail = bounded(p.Type), bounded(p.Title), bounded(p.Detail)
			if p.DecisionID != "" {
				e.DecisionID = bounded(p.DecisionID)
			}
		}
	}
	status := http.StatusServiceUnavailable
	if resp.StatusCode == http.StatusInternalServerError {
		status = http.StatusInternalServerError // the policy could not decide
	}
	return failed(status), e
}

// bounded keeps an error's text short: it may end up in logs.
func bounded(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// retryAfter reads a Retry-After of delay-seconds (the PDP's form); 0 when
// absent or not one.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 || n > 3600 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// headerValue reads a header of a decision's map, whatever the case of its
// name.
func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
