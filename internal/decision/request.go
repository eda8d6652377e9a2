package decision

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/uri"
)

// Limits on what one request may carry, enforced before any token parsing.
const (
	MaxHeaderCount   = 256
	MaxHeaderValues  = 32
	MaxHeaderBytes   = 64 << 10 // all names and values together
	MaxClientCertPEM = 16 << 10
	MaxFormFields    = 64
	MaxFormBytes     = 64 << 10
)

// ErrInvalidRequest marks a request the caller (the gateway) got wrong.
var ErrInvalidRequest = errors.New("invalid request")

// Request is the API call a gateway asks about, normalised.
type Request struct {
	Method string
	// URL is absolute and normalised (RFC 3986 §6.2.2–6.2.3): lower-case
	// scheme and host, no default port, no dot segments, no fragment. It
	// is empty when PathRefused is set.
	URL *url.URL
	// PathRefused says why the request path was refused (uri.NormalizePath),
	// "" when it was not: the engine then denies with reason
	// request_path_invalid (400) before anything else, on every transport.
	PathRefused string
	// Headers have lower-case names.
	Headers map[string][]string
	// RemoteIP is the client address the gateway vouches for; zero if none.
	RemoteIP netip.Addr
	// ClientCertSHA256 is the base64url SHA-256 of the DER of the client
	// certificate the gateway vouches for (RFC 8705 x5t#S256), or "".
	ClientCertSHA256 string
	// Context is the caller's free-form context object, or nil.
	Context ast.Object
	// Form holds the form fields of the request body, when the gateway
	// forwards them (token-endpoint requests).
	Form url.Values
	// Message is the messaging operation asked about instead of an HTTP
	// request (NewMessage), or nil. Method is then "" and URL empty.
	Message *Message
}

// RawRequest is a request as a transport received it, before normalisation.
type RawRequest struct {
	Method        string
	URL           string
	Headers       map[string][]string
	RemoteIP      string
	ClientCertPEM string
	Context       ast.Object
	Form          url.Values
}

// NewRequest validates and normalises raw. Errors wrap ErrInvalidRequest and
// say what is wrong in words safe to return to the caller.
func NewRequest(raw RawRequest) (*Request, error) {
	req := &Request{Context: raw.Context}
	if raw.Method == "" {
		return nil, invalid("request.method is required")
	}
	if !IsToken(raw.Method) || len(raw.Method) > 32 {
		return nil, invalid("request.method is not an HTTP method")
	}
	req.Method = raw.Method
	if raw.URL == "" {
		return nil, invalid("request.url is required")
	}
	u, err := uri.Normalize(raw.URL)
	if err == nil {
		err = uri.RefuseFragment(raw.URL)
	}
	switch {
	case errors.Is(err, uri.ErrPathInvalid):
		// A decision, not an error of the caller: the client sent it.
		req.PathRefused = strings.TrimPrefix(err.Error(), uri.ErrPathInvalid.Error()+": ")
		req.URL = &url.URL{}
	case err != nil:
		return nil, invalid("request.url: %v", err)
	default:
		req.URL = u
	}
	if req.Headers, err = normalizeHeaders(raw.Headers); err != nil {
		return nil, err
	}
	if raw.RemoteIP != "" {
		ip, err := ParseClientAddr(raw.RemoteIP)
		if err != nil {
			return nil, invalid("request.remote_ip %s", strings.TrimPrefix(err.Error(), ErrClientAddr.Error()+": "))
		}
		req.RemoteIP = ip
	}
	if len(raw.Form) > 0 {
		if err := checkForm(raw.Form); err != nil {
			return nil, err
		}
		req.Form = raw.Form
	}
	if raw.ClientCertPEM != "" {
		if req.ClientCertSHA256, err = certThumbprint(raw.ClientCertPEM); err != nil {
			return nil, err
		}
	}
	return req, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

func normalizeHeaders(in map[string][]string) (map[string][]string, error) {
	if len(in) > MaxHeaderCount {
		return nil, invalid("request.headers has more than %d headers", MaxHeaderCount)
	}
	out := make(map[string][]string, len(in))
	size := 0
	for name, values := range in {
		if !IsToken(name) {
			return nil, invalid("request.headers: %q is not a header name", truncate(name, 64))
		}
		if len(values) > MaxHeaderValues {
			return nil, invalid("request.headers.%s has more than %d values", truncate(name, 64), MaxHeaderValues)
		}
		lname := strings.ToLower(name)
		size += len(name)
		for _, v := range values {
			size += len(v)
		}
		if size > MaxHeaderBytes {
			return nil, invalid("request.headers exceed %d bytes", MaxHeaderBytes)
		}
		out[lname] = append(out[lname], values...)
	}
	return out, nil
}

func checkForm(f url.Values) error {
	if len(f) > MaxFormFields {
		return invalid("request.body has more than %d fields", MaxFormFields)
	}
	size := 0
	for k, vs := range f {
		size += len(k)
		for _, v := range vs {
			size += len(v)
		}
	}
	if size > MaxFormBytes {
		return invalid("request.body exceeds %d bytes", MaxFormBytes)
	}
	return nil
}

func certThumbprint(p string) (string, error) {
	if len(p) > MaxClientCertPEM {
		return "", invalid("request.tls_client_cert exceeds %d bytes", MaxClientCertPEM)
	}
	block, rest := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		return "", invalid("request.tls_client_cert is not one PEM certificate")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", invalid("request.tls_client_cert is not a valid certificate")
	}
	sum := sha256.Sum256(block.Bytes)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// IsToken reports whether s is an RFC 9110 token (method and header names).
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
