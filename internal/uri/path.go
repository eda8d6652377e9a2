package uri

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrPathInvalid marks a request path that NormalizePath refuses: one whose
// spelling means different paths to different parsers.
var ErrPathInvalid = errors.New("request path refused")

func pathInvalid(why string) error {
	return fmt.Errorf("%w: %s", ErrPathInvalid, why)
}

// RefuseFragment refuses a request URL with a "#" anywhere: a request
// target has no fragment (RFC 9112 §3.2), so a "#" in one is the client's,
// and servers disagree on what it means. Normalize (like WHATWG URL
// parsers and Node) ends the path at it, while Go's server keeps "#..." in
// the path, where path.Clean (chi's CleanPath, a handler cleaning its own
// path) resolves the dot segments after it: /v1/accounts/42#/../../admin
// would be decided as /v1/accounts/42 and served as /admin. Envoy rejects
// such paths as well. The error wraps ErrPathInvalid.
func RefuseFragment(rawURL string) error {
	if strings.Contains(rawURL, "#") {
		return pathInvalid(`a "#": a request target has no fragment`)
	}
	return nil
}

// NormalizePath normalises the escaped path of a request URL (without query
// or fragment) as every transport must before a route is matched, and
// refuses the spellings that parsers disagree on. The rules, in order:
//
//  1. A raw "\" or control character is refused; another byte that RFC 3986
//     does not allow in a path (space, "<", non-ASCII, ...) is
//     percent-encoded.
//  2. Percent-encodings: an invalid one is refused; one of an unreserved
//     character is decoded, the others upper-cased (RFC 3986 §6.2.2.1-2).
//     An encoded "/" (%2F) or "\" (%5C), an encoded control character
//     (%00-%1F, %7F) and double encoding ("%25" followed by a hex digit)
//     are refused.
//  3. Dot segments are removed (RFC 3986 §5.2.4); a ".." after an empty
//     segment ("//..") is refused, since parsers that merge slashes first
//     climb one segment further. A dot or empty segment with path
//     parameters (".;x", "..;x", ";x") is refused.
//  4. Runs of "/" are merged into one; an empty path becomes "/".
//  5. The decoded path must be valid UTF-8 (no overlong forms, no
//     surrogates) without control characters (C0, DEL, C1).
//
// The result is the normalised escaped path. ";" path parameters are kept:
// whether a route accepts them is the policy's call. Errors wrap
// ErrPathInvalid and say why in words safe to show.
func NormalizePath(p string) (string, error) {
	if len(p) > MaxLength {
		return "", pathInvalid("too long")
	}
	if p != "" && p[0] != '/' {
		return "", pathInvalid("does not start with /")
	}
	s, err := normalizeEncoding(p)
	if err != nil {
		return "", err
	}
	s, err = removeDotSegments(s)
	if err != nil {
		return "", err
	}
	s = mergeSlashes(s)
	if err := checkDecoded(s); err != nil {
		return "", err
	}
	// Escaping can triple a path: the result is bounded as its input is,
	// so that normalising it again gives it back.
	if len(s) > MaxLength {
		return "", pathInvalid("too long once percent-encoded")
	}
	return s, nil
}

// normalizeEncoding applies rules 1 and 2.
func normalizeEncoding(p string) (string, error) {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			return "", pathInvalid(`a backslash ("\")`)
		case c < 0x20 || c == 0x7f:
			return "", pathInvalid("a control character")
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", pathInvalid("an invalid percent-encoding")
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case isUnreserved(v):
				b.WriteByte(v)
			case v == '/':
				return "", pathInvalid("an encoded slash (%2F) inside a segment")
			case v == '\\':
				return "", pathInvalid("an encoded backslash (%5C)")
			case v < 0x20 || v == 0x7f:
				return "", pathInvalid("an encoded control character")
			default:
				writeEscaped(&b, v)
			}
			i += 2
		case isPathChar(c):
			b.WriteByte(c)
		default:
			writeEscaped(&b, c)
		}
	}
	s := b.String()
	// "%25" followed by a hex digit decodes to a percent-encoding: a second
	// decoding (by a proxy or a framework) would read another path. The
	// check runs after unreserved characters were decoded, so that
	// "%25%32F" is caught as "%252F".
	for i := 0; ; {
		j := strings.Index(s[i:], "%25")
		if j < 0 {
			break
		}
		i += j + 3
		if i < len(s) && isHex(s[i]) {
			return "", pathInvalid("double percent-encoding (%25 followed by a hex digit)")
		}
	}
	return s, nil
}

// removeDotSegments applies rule 3 to a path whose unreserved characters
// are decoded, so that "%2E%2E" is a ".." segment.
func removeDotSegments(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if !strings.Contains(p, ".") && !strings.Contains(p, ";") && !strings.Contains(p, "%3B") {
		return p, nil
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		if name, params := cutParams(s); params {
			if name == "" || name == "." || name == ".." {
				return "", pathInvalid("path parameters on an empty or dot segment")
			}
		}
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 && out[len(out)-1] == "" {
				return "", pathInvalid(`a ".." segment after an empty segment ("//..")`)
			}
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
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
	return r, nil
}

// cutParams splits a segment at its first path parameter (";" or its
// encoding %3B, which some servers decode before they strip parameters).
func cutParams(seg string) (name string, params bool) {
	i := strings.IndexByte(seg, ';')
	if j := strings.Index(seg, "%3B"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return seg, false
	}
	return seg[:i], true
}

// mergeSlashes applies rule 4.
func mergeSlashes(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// checkDecoded applies rule 5 to a path whose percent-encodings are valid.
func checkDecoded(p string) error {
	if !strings.Contains(p, "%") {
		return nil // ASCII without controls (rule 1)
	}
	dec := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' {
			dec = append(dec, unhex(p[i+1])<<4|unhex(p[i+2]))
			i += 2
			continue
		}
		dec = append(dec, p[i])
	}
	for len(dec) > 0 {
		r, size := utf8.DecodeRune(dec)
		if r == utf8.RuneError && size <= 1 {
			return pathInvalid("invalid or overlong UTF-8 after percent-decoding")
		}
		if unicode.IsControl(r) {
			return pathInvalid("an encoded control character")
		}
		dec = dec[size:]
	}
	return nil
}

const upperHex = "0123456789ABCDEF"

func writeEscaped(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}

// isPathChar reports whether c may appear unencoded in an RFC 3986 path:
// unreserved, sub-delims, ":", "@" and the "/" separator.
func isPathChar(c byte) bool {
	return isUnreserved(c) || strings.IndexByte("!$&'()*+,;=:@/", c) >= 0
}
