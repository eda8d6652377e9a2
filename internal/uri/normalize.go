// Package uri normalises absolute http(s) URLs as RFC 3986 §6.2.2–6.2.3
// describe, so that DPoP htu checks and route matching compare one form,
// and refuses request paths that different parsers read as different paths
// (NormalizePath).
package uri

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// MaxLength bounds the URLs Normalize accepts.
const MaxLength = 8 << 10

// Normalize parses an absolute http(s) URL and normalises it as RFC 3986
// §6.2.2 and §6.2.3 describe: scheme and host lower-cased, the default port
// dropped, the path normalised by NormalizePath (which also refuses
// ambiguous spellings), and the fragment dropped. DPoP htu checks and route
// matching compare this form. A refused path gives an error wrapping
// ErrPathInvalid; any other problem, a plain error.
func Normalize(raw string) (*url.URL, error) {
	if len(raw) > MaxLength {
		return nil, errors.New("too long")
	}
	// The path is cut out before url.Parse, which would refuse some of the
	// spellings NormalizePath must name (control characters, invalid
	// percent-encodings) as "not a URL".
	rest, rawPath := raw, ""
	if i := strings.Index(raw, "://"); i >= 0 {
		authEnd := len(raw)
		if j := strings.IndexAny(raw[i+3:], "/?#"); j >= 0 {
			authEnd = i + 3 + j
		}
		pathEnd := len(raw)
		if j := strings.IndexAny(raw[authEnd:], "?#"); j >= 0 {
			pathEnd = authEnd + j
		}
		rest, rawPath = raw[:authEnd]+raw[pathEnd:], raw[authEnd:pathEnd]
	}
	u, err := url.Parse(rest)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.User != nil {
		return nil, errors.New("must not carry user information")
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, errors.New("invalid port")
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		} else {
			port = strconv.Itoa(n)
		}
	}
	if host == "" {
		return nil, errors.New("missing host")
	}
	if !strings.Contains(host, ":") { // not an IPv6 literal
		if host, err = normalizeHost(host); err != nil {
			return nil, err
		}
	}
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	p, err := NormalizePath(rawPath)
	if err != nil {
		return nil, err
	}
	dec, err := url.PathUnescape(p)
	if err != nil { // never: NormalizePath checked every percent-encoding
		return nil, pathInvalid("an invalid percent-encoding")
	}
	return &url.URL{Scheme: scheme, Host: hostport, Path: dec, RawPath: p, RawQuery: u.RawQuery}, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// normalizeHost checks a lower-cased host name (not an IPv6 literal) and
// drops the root's trailing dot, which gateways strip (nginx) or route
// with: api.example.com. is api.example.com to route matching. A host
// that parsers read otherwise is refused: an empty label (a leading dot,
// "..", a second trailing dot) or a byte outside ASCII (a Host is ASCII,
// RFC 9110 §7.2; an IDNA mapping would read "api\uff0eexample.com" as
// api.example.com).
func normalizeHost(host string) (string, error) {
	host = strings.TrimSuffix(host, ".")
	if host == "" || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
		return "", errors.New("host has an empty label")
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", errors.New("host is not ASCII (IDNA hosts are sent as xn--)")
		}
	}
	return host, nil
}
