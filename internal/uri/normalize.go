// Package uri normalises absolute http(s) URLs as RFC 3986 §6.2.2–6.2.3
// describe, so that DPoP htu checks and route matching compare one form.
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
// dropped, percent-encodings of unreserved characters decoded and the others
// upper-cased, dot segments removed, an empty path made "/", and the
// fragment dropped. DPoP htu checks and route matching compare this form.
func Normalize(raw string) (*url.URL, error) {
	if len(raw) > MaxLength {
		return nil, errors.New("too long")
	}
	u, err := url.Parse(raw)
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
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	p, err := normalizePath(u.EscapedPath())
	if err != nil {
		return nil, err
	}
	out := &url.URL{Scheme: scheme, Host: hostport, RawQuery: u.RawQuery}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return nil, errors.New("invalid percent-encoding in path")
	}
	out.Path = dec
	out.RawPath = p
	if out.EscapedPath() != p { // keep the exact normalised escaping
		out.RawPath = p
	}
	return out, nil
}

// normalizePath normalises percent-encoding and removes dot segments
// (RFC 3986 §5.2.4) of an escaped path.
func normalizePath(p string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", errors.New("invalid percent-encoding in path")
		}
		v := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(v) {
			b.WriteByte(v)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return removeDotSegments(b.String()), nil
}

func removeDotSegments(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
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
