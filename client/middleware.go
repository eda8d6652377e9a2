package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// UpstreamPrefix starts every header the PDP adds to an allowed request
// (X-Tokenguard-Subject, ...). A client's own headers under it never reach
// the PDP nor the wrapped handler.
const UpstreamPrefix = "X-Tokenguard-"

// Problem types of the middleware's answers, stable: clients may switch on
// them.
const (
	// ProblemDenied: the PDP denied the request; reasons lists the codes.
	ProblemDenied = "https://tokenguard.dev/problems/denied"
	// ProblemUnavailable: no decision could be had; the request is refused.
	ProblemUnavailable = "https://tokenguard.dev/problems/decision-unavailable"
	// ProblemInvalidRequest: the PDP cannot read the request as the client
	// sent it (400 or 413 from the PDP); the request is refused with 400.
	ProblemInvalidRequest = "https://tokenguard.dev/problems/invalid-request"
)

// MiddlewareOptions configure Middleware. BaseURL is required.
type MiddlewareOptions struct {
	// BaseURL is the service's external URL as its clients call it, e.g.
	// "https://api.example.com" or "https://example.com/api": the URL the
	// PDP decides is BaseURL's scheme and host, its path followed by the
	// request's path, and the request's query. A service knows its own
	// name: the Host header is the client's to choose and is not used,
	// unless it is one of Hosts.
	BaseURL string
	// Hosts are more host names (host or host:port) the service answers to
	// under BaseURL's scheme: a request whose Host is one of them is
	// decided with that host, any other with BaseURL's.
	Hosts []string
	// ErrorStatus is the status answered when no decision could be had:
	// 503 (the default) or 500. Overloaded answers are always 503 with
	// Retry-After.
	ErrorStatus int
	// RemoteIP gives the client's address to decide on. The default is the
	// host of the request's RemoteAddr (the peer): set it when a proxy you
	// trust sits in front, to read its header.
	RemoteIP func(*http.Request) string
	// Context, when set, gives the policy's input.context for a request.
	Context func(*http.Request) map[string]any
	// Logger receives one line per request that could not be decided
	// (never a token). nil: slog.Default().
	Logger *slog.Logger
}

// hopHeaders are not the request's own, or are credentials the policy never
// reads, or forwarded values a client could set: they are not sent to the
// PDP.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
	"Cookie": true, "Proxy-Authorization": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"X-Forwarded-Method": true, "X-Forwarded-Uri": true, "X-Forwarded-Port": true, "X-Forwarded-Prefix": true,
	"X-Real-Ip": true, "X-Original-Method": true, "X-Original-Uri": true, "X-Original-Url": true,
	"X-Original-Proto": true, "X-Original-Host": true, "X-Forwarded-Tls-Client-Cert": true,
	"X-Ssl-Client-Cert": true, "X-Client-Cert": true,
}

type decisionKey struct{}

// FromContext returns the decision that allowed the request, inside a
// handler Middleware wraps.
func FromContext(ctx context.Context) (*Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(*Decision)
	return d, ok
}

// Middleware returns a middleware that asks the PDP about every request
// before next sees it. On an allow, next gets the request with the
// decision's upstream headers (and none of the client's own X-Tokenguard-*
// headers) and the response carries the decision's headers (a fresh
// DPoP-Nonce). On a deny, the client gets the decision's status, its
// WWW-Authenticate, DPoP-Nonce or Retry-After headers and a problem
// document. When the PDP cannot read the request as the client sent it,
// the answer is 400; when no decision can be had otherwise, ErrorStatus.
// Either way the request never reaches next.
func Middleware(c *Client, opts MiddlewareOptions) (func(http.Handler) http.Handler, error) {
	if c == nil {
		return nil, errors.New("client: Middleware needs a Client")
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("client: BaseURL %q: must be an absolute http or https URL without query", opts.BaseURL)
	}
	switch opts.ErrorStatus {
	case 0:
		opts.ErrorStatus = http.StatusServiceUnavailable
	case http.StatusServiceUnavailable, http.StatusInternalServerError:
	default:
		return nil, fmt.Errorf("client: ErrorStatus %d: must be 503 or 500", opts.ErrorStatus)
	}
	hosts := map[string]bool{}
	for _, h := range opts.Hosts {
		if h == "" || strings.ContainsAny(h, "/?#@\\ ") {
			return nil, fmt.Errorf("client: Hosts: %q is not a host", h)
		}
		hosts[strings.ToLower(h)] = true
	}
	if opts.RemoteIP == nil {
		opts.RemoteIP = peerIP
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &middleware{client: c, opts: opts, base: base, prefix: strings.TrimRight(base.EscapedPath(), "/"), hosts: hosts}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
	}, nil
}

type middleware struct {
	client *Client
	opts   MiddlewareOptions
	base   *url.URL
	prefix string
	hosts  map[string]bool
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	d, err := m.client.Decide(r.Context(), m.request(r))
	if err != nil {
		var over *OverloadedError
		if errors.As(err, &over) {
			m.opts.Logger.Warn("decision point overloaded; request refused", "method", r.Method, "path", r.URL.Path, "decision_id", over.DecisionID)
			writeDeny(w, d, ProblemUnavailable, "the decision point is overloaded; retry later")
			return
		}
		if r.Context().Err() != nil {
			// The client went away or an outer deadline passed: whoever
			// reads the answer gets a refusal, never an empty 200.
			m.opts.Logger.Debug("request ended before its decision; refused", "method", r.Method, "path", r.URL.Path, "error", err)
			writeProblem(w, m.opts.ErrorStatus, ProblemUnavailable, "the request ended before an access decision was made; it is refused", nil)
			return
		}
		var bad *StatusError
		if errors.As(err, &bad) && (bad.Status == http.StatusBadRequest || bad.Status == http.StatusRequestEntityTooLarge) {
			// The PDP cannot read the request as the client sent it (too
			// many headers, a method that is not one): the client's error.
			m.opts.Logger.Warn("the decision point cannot read the request; refused", "method", r.Method, "path", r.URL.Path, "error", err)
			writeProblem(w, http.StatusBadRequest, ProblemInvalidRequest, "the request cannot be decided: "+bad.Detail, nil)
			return
		}
		m.opts.Logger.Error("no decision; request refused", "method", r.Method, "path", r.URL.Path, "error", err)
		writeProblem(w, m.opts.ErrorStatus, ProblemUnavailable, "no access decision could be made; the request is refused", nil)
		return
	}
	if !d.Allow {
		writeDeny(w, d, ProblemDenied, "the request was denied")
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), decisionKey{}, d))
	stripUpstream(r2.Header)
	for k, v := range d.UpstreamHeaders {
		r2.Header.Set(k, v)
	}
	for k, v := range d.Headers { // e.g. a fresh DPoP-Nonce
		w.Header().Set(k, v)
	}
	next.ServeHTTP(w, r2)
}

// request is the request to decide.
func (m *middleware) request(r *http.Request) *Request {
	host := m.base.Host
	if h := strings.ToLower(r.Host); h != "" && m.hosts[h] {
		host = h
	}
	u := m.base.Scheme + "://" + host + m.prefix + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	headers := make(map[string][]string, len(r.Header))
	for name, vals := range r.Header {
		cn := http.CanonicalHeaderKey(name)
		if hopHeaders[cn] || strings.HasPrefix(cn, UpstreamPrefix) {
			continue
		}
		headers[name] = vals
	}
	req := &Request{Method: r.Method, URL: u, Headers: headers, RemoteIP: m.opts.RemoteIP(r)}
	if m.opts.Context != nil {
		req.Context = m.opts.Context(r)
	}
	return req
}

// stripUpstream removes every X-Tokenguard-* header.
func stripUpstream(h http.Header) {
	for name := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(name), UpstreamPrefix) {
			delete(h, name)
		}
	}
}

// peerIP is the host of the request's RemoteAddr.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// writeDeny answers a deny: its status, its headers, a problem document.
func writeDeny(w http.ResponseWriter, d *Decision, typ, detail string) {
	for k, v := range d.Headers {
		w.Header().Set(k, v)
	}
	ext := map[string]any{"reasons": d.Codes()}
	if d.ID != "" {
		ext["decision_id"] = d.ID
	}
	writeProblem(w, d.Status, typ, detail, ext)
}

// writeProblem writes an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, status int, typ, detail string, ext map[string]any) {
	body := map[string]any{"type": typ, "title": statusText(status), "status": status, "detail": detail}
	for k, v := range ext {
		body[k] = v
	}
	b, _ := json.Marshal(body) // plain values
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// statusText is the title of a problem with status s.
func statusText(s int) string {
	if t := http.StatusText(s); t != "" {
		return t
	}
	return "Error"
}
