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
// request is read from the headers these gateways send; the client address
// and certificate they forward are believed only from a trusted gateway.
type ForwardAuth struct {
	// TrustedProxies are the gateway addresses whose forwarded values count.
	TrustedProxies []netip.Prefix
	// Credential, when set, is a shared gateway credential (header
	// X-Tokenguard-Gateway) that also makes forwarded values count.
	Credential string
}

// GatewayHeader carries the shared gateway credential of forward-auth.
const GatewayHeader = "X-Tokenguard-Gateway"

// Headers of the forward-auth protocols: the original request, and what the
// gateway vouches for. They are consumed here and never reach the policy as
// headers of the original request.
var forwardHeaders = map[string]bool{
	"x-original-method": true, "x-original-uri": true, "x-original-url": true, "x-original-proto": true,
	"x-forwarded-method": true, "x-forwarded-proto": true, "x-forwarded-host": true, "x-forwarded-uri": true,
	"x-forwarded-for": true, "x-real-ip": true, "x-forwarded-port": true, "x-forwarded-prefix": true,
	"x-forwarded-tls-client-cert": true, "x-ssl-client-cert": true, "x-client-cert": true,
	"x-tokenguard-gateway": true, "connection": true, "content-length": true, "transfer-encoding": true,
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

// trusted reports whether the peer may vouch for the client's address and
// certificate: a configured gateway address, or the shared credential.
func (f *forwardAuth) trusted(r *http.Request, peer netip.Addr) bool {
	if f.cfg.Credential != "" {
		given := sha256.Sum256([]byte(r.Header.Get(GatewayHeader)))
		if subtle.ConstantTimeCompare(given[:], f.digest[:]) == 1 {
			return true
		}
	}
	for _, p := range f.cfg.TrustedProxies {
		if p.Contains(peer) {
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

// originalRequest rebuilds the request the gateway is about to forward.
func (f *forwardAuth) originalRequest(r *http.Request) (decision.RawRequest, *Problem) {
	h := r.Header
	method := firstOf(h, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		method = r.Method
	}
	proto := strings.ToLower(firstOf(h, "X-Forwarded-Proto", "X-Original-Proto"))
	if proto == "" {
		proto = "https"
	}
	host := firstOf(h, "X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	uri := firstOf(h, "X-Forwarded-Uri", "X-Original-Uri")
	if full := h.Get("X-Original-Url"); uri == "" && full != "" {
		if u, err := url.Parse(full); err == nil && u.IsAbs() {
			proto, host, uri = u.Scheme, u.Host, u.RequestURI()
		}
	}
	if uri == "" {
		return decision.RawRequest{}, badRequest("the original request URI is missing (X-Original-URI or X-Forwarded-Uri)")
	}
	if !strings.HasPrefix(uri, "/") {
		return decision.RawRequest{}, badRequest("the original request URI must start with /")
	}
	raw := decision.RawRequest{Method: method, URL: proto + "://" + host + uri, Headers: map[string][]string{}}
	for name, vals := range h {
		if !forwardHeaders[strings.ToLower(name)] {
			raw.Headers[name] = vals
		}
	}
	peer := peerAddr(r)
	raw.RemoteIP = peer.String()
	if !peer.IsValid() {
		raw.RemoteIP = ""
	}
	if f.trusted(r, peer) {
		if ip := forwardedFor(h); ip != "" {
			raw.RemoteIP = ip
		}
		raw.ClientCertPEM = forwardedCert(h)
	}
	return raw, nil
}

func firstOf(h http.Header, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
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

// forwardedFor is the client address a trusted gateway reports: X-Real-IP,
// else the first (client-most) address of X-Forwarded-For, as the trusted
// gateway appended it.
func forwardedFor(h http.Header) string {
	if v := strings.TrimSpace(h.Get("X-Real-Ip")); v != "" {
		if a, err := netip.ParseAddr(v); err == nil {
			return a.Unmap().String()
		}
	}
	xff := strings.Join(h.Values("X-Forwarded-For"), ",")
	first, _, _ := strings.Cut(xff, ",")
	if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
		return a.Unmap().String()
	}
	return ""
}

// forwardedCert is the client certificate a trusted gateway reports, as PEM:
// nginx's $ssl_client_escaped_cert (URL-encoded PEM) or Traefik's
// X-Forwarded-Tls-Client-Cert (base64 DER).
func forwardedCert(h http.Header) string {
	if v := firstOf(h, "X-Ssl-Client-Cert", "X-Client-Cert"); v != "" {
		if s, err := url.QueryUnescape(v); err == nil {
			return s
		}
		return ""
	}
	if v := h.Get("X-Forwarded-Tls-Client-Cert"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(first))
		if err != nil {
			return ""
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return ""
}
