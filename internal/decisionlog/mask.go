package decisionlog

import (
	"bytes"
	"regexp"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The mask of mask.rego, in Go: the same rules with the same regular
// expressions. TestMaskMatchesThePolicy and FuzzMaskMatchesThePolicy hold
// the two to the same answers; a change to one is a change to both.
var (
	credentialHeaderNames = map[string]bool{
		"authorization": true, "proxy-authorization": true, "dpop": true, "cookie": true, "set-cookie": true,
		"x-tokenguard-gateway": true,
	}
	credentialHeaderRE = regexp.MustCompile(`(?i)(auth|token|secret|pass|pwd|api[-_]?key|key$|sess|cookie|credential|signature|sig$|jwt|assertion|bearer|ticket|saml|hmac|code|referr?er|ur[il]|path|location)`)
	credentialQueryRE  = regexp.MustCompile(`(?i)(auth|token|secret|pass|pwd|api[-_]?key|key$|sess|cookie|credential|signature|sig$|jwt|assertion|bearer|ticket|saml|hmac|code)`)
	plainNameRE        = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

	// The same alternatives for ASCII names, matched without the regexp
	// engine (a name with any other byte goes to the regexps: (?i) folds
	// some non-ASCII letters to ASCII ones, such as U+212A to k). Both end
	// in "key" or "sig" too (key$, sig$).
	credentialQueryWords  = []string{"auth", "token", "secret", "pass", "pwd", "apikey", "api-key", "api_key", "sess", "cookie", "credential", "signature", "jwt", "assertion", "bearer", "ticket", "saml", "hmac", "code"}
	credentialHeaderWords = append(slices.Clip(credentialQueryWords), "referer", "referrer", "uri", "url", "path", "location")
)

// asciiLower is s in ASCII lower case, and whether s is all ASCII.
func asciiLower(s string, buf []byte) ([]byte, bool) {
	buf = buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return nil, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf, true
}

func containsAny(s []byte, words []string) bool {
	for _, w := range words {
		if bytes.Contains(s, []byte(w)) {
			return true
		}
	}
	return false
}

// plainName is mask.rego's plain_name: ^[a-z0-9][a-z0-9_.-]*$.
func plainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// credentialQuery is mask.rego's regex on a query parameter name.
func credentialQuery(name string) bool {
	var arr [64]byte
	lower, ok := asciiLower(name, arr[:])
	if !ok {
		return credentialQueryRE.MatchString(name)
	}
	return containsAny(lower, credentialQueryWords) || credentialSuffix(lower)
}

// credentialSuffix is the regexps' key$ and sig$.
func credentialSuffix(lower []byte) bool {
	return bytes.HasSuffix(lower, []byte("key")) || bytes.HasSuffix(lower, []byte("sig"))
}

// mask is what mask.rego erases from one event's input.
type mask struct {
	// headers are the credential headers erased one by one.
	headers []string
	// allHeaders erases input.request.headers (a credential header whose
	// name a mask path cannot spell).
	allHeaders bool
	// query erases input.request.query and input.request.url.
	query bool
}

func (m mask) empty() bool { return len(m.headers) == 0 && !m.allHeaders && !m.query }

// paths are the mask paths, sorted (the order OPA applies a mask set in).
func (m mask) paths() []string {
	var out []string
	for _, h := range m.headers {
		out = append(out, "/input/request/headers/"+h)
	}
	if m.allHeaders {
		out = append(out, "/input/request/headers")
	}
	if m.query {
		out = append(out, "/input/request/query", "/input/request/url")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// maskOf computes the mask of a policy input.
func maskOf(input ast.Value) mask {
	var m mask
	req := field(input, "request")
	if req == nil {
		return m
	}
	forEachName(field(req, "headers"), func(name string) {
		if !credentialHeader(name) {
			return
		}
		if plainName(name) {
			m.headers = append(m.headers, name)
		} else {
			m.allHeaders = true
		}
	})
	forEachName(field(req, "query"), func(name string) {
		if credentialQuery(name) {
			m.query = true
		}
	})
	slices.Sort(m.headers)
	m.headers = slices.Compact(m.headers)
	return m
}

func credentialHeader(name string) bool {
	if credentialHeaderNames[name] {
		return true
	}
	var arr [64]byte
	lower, ok := asciiLower(name, arr[:])
	if !ok {
		return credentialHeaderRE.MatchString(name)
	}
	return containsAny(lower, credentialHeaderWords) || credentialSuffix(lower)
}

// field is obj[key] when obj is an object holding key, else nil.
func field(v ast.Value, key string) ast.Value {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil
	}
	t := obj.Get(ast.InternedTerm(key))
	if t == nil {
		return nil
	}
	return t.Value
}

// forEachName calls fn with every string that `some name, _ in v` binds
// name to: an object's string keys, a set's string members. An array's
// indexes are numbers, which the policy's regex.match refuses (undefined,
// so no mask), as it does non-string keys.
func forEachName(v ast.Value, fn func(string)) {
	switch c := v.(type) {
	case ast.Object:
		c.Foreach(func(k, _ *ast.Term) {
			if s, ok := k.Value.(ast.String); ok {
				fn(string(s))
			}
		})
	case ast.Set:
		c.Foreach(func(k *ast.Term) {
			if s, ok := k.Value.(ast.String); ok {
				fn(string(s))
			}
		})
	}
}
