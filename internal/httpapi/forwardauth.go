package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/tokenguard/pdp/internal/decision"
)

// ForwardAuth configures /v1/forward-auth, the endpoint of nginx
// auth_request, Traefik ForwardAuth and Caddy forward_auth. The original
// request is read from the headers of one gateway's contract (Style), and
// only from a trusted gateway: a client cannot choose what is decided, nor
// the address and certificate it is decided for.
type ForwardAuth struct {
	// Style names the gateway whose header contract is read; empty is nginx.
	Style Style
	// TrustedProxies are the gateway addresses whose forwarded values count.
	TrustedProxies []netip.Prefix
	// Credential, when set, is a shared gateway credential (header
	// X-Tokenguard-Gateway) that also makes forwarded values count.
	Credential string
	// ClientCA reports that the listener verifies gateway client
	// certificates; a verified one makes forwarded values count too.
	ClientCA bool
}

// Style is a gateway's forward-auth header contract.
type Style string

// The gateways whose forward-auth contracts are known.
const (
	StyleNginx   Style = "nginx"
	StyleTraefik Style = "traefik"
	StyleCaddy   Style = "caddy"
)

// contract names the headers one gateway sets on its auth request. Each of
// them is set (overwritten) by the gateway itself, so its value is the
// gateway's, never the client's. Headers outside the contract are never read
// for the request line, the client address or the certificate.
type contract struct {
	method, uri, proto string
	// host is the original host; empty means the Host header itself, which
	// nginx always sets on a proxied request.
	host string
	// realIP is a header holding the client address alone; forwardedFor
	// instead takes the right-most X-Forwarded-For hop that is not a
	// trusted proxy.
	realIP       string
	forwardedFor bool
	// cert holds the client certificate: URL-encoded PEM (certPEM) or
	// base64 DER.
	cert    string
	certPEM bool
}

var contracts = map[Style]contract{
	StyleNginx: {method: "X-Original-Method", uri: "X-Original-Uri", proto: "X-Original-Proto",
		realIP: "X-Real-Ip", cert: "X-Ssl-Client-Cert", certPEM: true},
	StyleTraefik: {method: "X-Forwarded-Method", uri: "X-Forwarded-Uri", proto: "X-Forwarded-Proto", host: "X-Forwarded-Host",
		forwardedFor: true, cert: "X-Forwarded-Tls-Client-Cert"},
	StyleCaddy: {method: "X-Forwarded-Method", uri: "X-Forwarded-Uri", proto: "X-Forwarded-Proto", host: "X-Forwarded-Host",
		forwardedFor: true, cert: "X-Forwarded-Tls-Client-Cert"},
}

// UpstreamHeaders are the headers every allow on /v1/forward-auth carries,
// empty when they do not apply, so that a gateway copying them to the
// upstream always overwrites a client's own.
var UpstreamHeaders = []string{
	"X-Tokenguard-Subject", "X-Tokenguard-Client-Id", "X-Tokenguard-Scopes",
	"X-Tokenguard-Grant-Type", "X-Tokenguard-Actor",
}

// GatewayHeader carries the shared gateway credential of forward-auth.
const GatewayHeader = "X-Tokenguard-Gateway"

// upstreamPrefix starts every header tokenguard sends upstream; a client's
// headers under it never reach the policy.
const upstreamPrefix = "x-tokenguard-"

// Bounds of the forwarded values read here.
const (
	maxForwardedValue = 8 << 10
	maxForwardedHops  = 64
)

// Headers of the forward-auth protocols, of every style: the original
// request, and what the gateway vouches for. They are consumed here (or
// ignored) and never reach the policy as headers of the original request.
var forwardHeaders = map[string]bool{
	"x-original-method": true, "x-original-uri": true, "x-original-url": true, "x-original-proto": true, "x-original-host": true,
	"x-forwarded-method": true, "x-forwarded-proto": true, "x-forwarded-host": true, "x-forwarded-uri": true,
	"x-forwarded-for": true, "x-real-ip": true, "x-forwarded-port": true, "x-forwarded-prefix": true, "forwarded": true,
	"x-forwarded-tls-client-cert": true, "x-ssl-client-cert": true, "x-client-cert": true,
	"connection": true, "content-length": true, "transfer-encoding": true,
}

type forwardAuth struct {
	cfg      ForwardAuth
	digest   [32]byte
	decider  Decider
	logger   *slog.Logger
	observer observer
}

func newForwardAuth(cfg ForwardAuth, decider Decider, logger *slog.Logger, obs observer) *forwardAuth {
	return &forwardAuth{cfg: cfg, digest: sha256.Sum256([]byte(cfg.Credential)), decider: decider, logger: logger, observer: obs}
}

// trusted reports whether the peer may vouch for the original request, the
// client's address and its certificate: a configured gateway address, the
// shared credential, or a verified gateway client certificate.
func (f *forwardAuth) trusted(r *http.Request, peer netip.Addr) bool {
	if f.cfg.Credential != "" {
		given := sha256.Sum256([]byte(r.Header.Get(GatewayHeader)))
		if subtle.ConstantTimeCompare(given[:], f.digest[:]) == 1 {
			return true
		}
	}
	if f.cfg.ClientCA && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	return f.trustedProxy(peer)
}

func (f *forwardAuth) trustedProxy(a netip.Addr) bool {
	for _, p := range f.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (f *forwardAuth) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := decision.NewID()
	w.Header().Set("X-Decision-Id", id)
	raw, p := f.originalRequest(r)
	if p != nil {
		p.Extensions = map[string]any{"decision_id": id}
		f.observer.rejected(p.Status)
		writeProblem(w, *p)
		return
	}
	req, err := decision.NewRequest(raw)
	if err != nil {
		p := badRequest(strings.TrimPrefix(err.Error(), decision.ErrInvalidRequest.Error()+": "))
		p.Extensions = map[string]any{"decision_id": id}
		f.observer.rejected(p.Status)
		writeProblem(w, *p)
		return
	}
	dec, err := f.decider.Decide(r.Context(), req)
	if dec != nil {
		dec.ID = id
	}
	defer func() { f.observer.decided(w, r, dec, err, start) }()
	if err != nil || dec == nil {
		f.logger.Error("decision failed", "decision_id", id, "error", err)
		writeForwardDeny(w, http.StatusInternalServerError, nil, id, []string{decision.CodePolicyError})
		return
	}
	if dec.Allow {
		for _, k := range UpstreamHeaders {
			w.Header()[k] = []string{""}
		}
		for k, v := range dec.UpstreamHeaders {
			w.Header().Set(k, v)
		}
		for k, v := range dec.Headers { // e.g. a fresh DPoP-Nonce
			w.Header().Set(k, v)
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	codes := make([]string, len(dec.Reasons))
	for i, rs := range dec.Reasons {
		codes[i] = rs.Code
	}
	writeForwardDeny(w, dec.Status, dec.Headers, id, codes)
}

// writeForwardDeny answers a deny the way gateways pass it on: the
// decision's status, its challenge headers and a small JSON body.
func writeForwardDeny(w http.ResponseWriter, status int, headers map[string]string, id string, codes []string) {
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"decision_id": id, "allow": false, "reasons": codes})
}

// originalRequest rebuilds the request the gateway is about to forward,
// from the headers of the configured gateway's contract alone.
func (f *forwardAuth) originalRequest(r *http.Request) (decision.RawRequest, *Problem) {
	h := r.Header
	peer := peerAddr(r)
	if !f.trusted(r, peer) {
		return decision.RawRequest{}, badRequest("the original request is believed only from a trusted gateway " +
			"(forward_auth.trusted_proxies or the gateway credential)")
	}
	c, ok := contracts[f.cfg.Style]
	if !ok {
		c = contracts[StyleNginx]
	}
	method, p := forwardedValue(h, c.method)
	if p != nil {
		return decision.RawRequest{}, p
	}
	uri, p := forwardedValue(h, c.uri)
	if p != nil {
		return decision.RawRequest{}, p
	}
	proto, p := forwardedValue(h, c.proto)
	if p != nil {
		return decision.RawRequest{}, p
	}
	host := r.Host
	if c.host != "" {
		if host, p = forwardedValue(h, c.host); p != nil {
			return decision.RawRequest{}, p
		}
	}
	if proto = strings.ToLower(proto); proto != "http" && proto != "https" {
		return decision.RawRequest{}, badRequest(c.proto + " must be http or https")
	}
	if host == "" || strings.ContainsAny(host, "/?#@\\") {
		return decision.RawRequest{}, badRequest("the original host is not a host")
	}
	if !strings.HasPrefix(uri, "/") {
		return decision.RawRequest{}, badRequest(c.uri + " must start with /")
	}
	raw := decision.RawRequest{Method: method, URL: proto + "://" + host + uri, Headers: map[string][]string{}}
	for name, vals := range h {
		if l := strings.ToLower(name); !forwardHeaders[l] && !strings.HasPrefix(l, upstreamPrefix) {
			raw.Headers[name] = vals
		}
	}
	if raw.RemoteIP, p = f.clientAddr(h, c); p != nil {
		return decision.RawRequest{}, p
	}
	raw.ClientCertPEM = forwardedCert(h, c)
	return raw, nil
}

// forwardedValue is the one value of a request-line header the gateway
// sets: required, sent once, bounded.
func forwardedValue(h http.Header, name string) (string, *Problem) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0 || strings.TrimSpace(vals[0]) == "":
		return "", badRequest("the original request is incomplete: " + name + " is missing")
	case len(vals) > 1:
		return "", badRequest(name + " is sent more than once")
	case len(vals[0]) > maxForwardedValue:
		return "", badRequest(name + " is too long")
	}
	return strings.TrimSpace(vals[0]), nil
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// clientAddr is the client address the gateway reports: the header its
// contract names (nginx: X-Real-IP, set from $remote_addr), or the
// right-most X-Forwarded-For hop that is not a trusted proxy (Traefik,
// Caddy: they append the peer they saw, or replace the header with it).
// Empty when the gateway reports none: an IP allow-list then matches
// nothing, and the gateway's own address is never used instead. An
// address read that is not one (decision.ParseClientAddr: a zone, a bad
// port, a host name) is a 400.
func (f *forwardAuth) clientAddr(h http.Header, c contract) (string, *Problem) {
	if c.realIP != "" {
		vals := h.Values(c.realIP)
		if len(vals) != 1 {
			return "", nil
		}
		return parseHop(c.realIP, vals[0])
	}
	// Walked from the right: the hops left of the first untrusted one are
	// the client's own and are never read, so no length, count or spelling
	// of them can take the address away (an empty address skips the
	// fingerprint's network check). Only the hops walked are bounded.
	xff := h.Values("X-Forwarded-For")
	walked := 0
	for v := len(xff) - 1; v >= 0; v-- {
		rest := xff[v]
		for {
			hop := rest
			i := strings.LastIndexByte(rest, ',')
			if i >= 0 {
				hop, rest = rest[i+1:], rest[:i]
			}
			if walked++; walked > maxForwardedHops {
				return "", nil
			}
			ip, p := parseHop("X-Forwarded-For", hop)
			if p != nil || ip == "" {
				return "", p
			}
			if (i < 0 && v == 0) || !f.trustedProxy(netip.MustParseAddr(ip)) {
				return ip, nil
			}
			if i < 0 {
				break
			}
		}
	}
	return "", nil
}

// parseHop reads one client address of header name; an empty one is none.
func parseHop(name, s string) (string, *Problem) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	a, err := decision.ParseClientAddr(s)
	if err != nil {
		return "", badRequest("the client address in " + name + " " + strings.TrimPrefix(err.Error(), decision.ErrClientAddr.Error()+": "))
	}
	return a.String(), nil
}

// forwardedCert is the client certificate the gateway reports, as PEM:
// nginx's $ssl_client_escaped_cert (URL-encoded PEM) or Traefik's
// X-Forwarded-Tls-Client-Cert (base64 DER, URL-escaped before Traefik v3;
// the shipped Caddyfile sends the same).
func forwardedCert(h http.Header, c contract) string {
	vals := h.Values(c.cert)
	if len(vals) != 1 || vals[0] == "" || len(vals[0]) > 4*maxForwardedValue {
		return ""
	}
	if c.certPEM {
		if s, err := url.QueryUnescape(vals[0]); err == nil {
			return s
		}
		return ""
	}
	first, _, _ := strings.Cut(vals[0], ",")
	first, err := url.PathUnescape(strings.TrimSpace(first)) // Traefik before v3 escapes it
	if err != nil {
		return ""
	}
	der, err := base64.StdEncoding.DecodeString(first)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
