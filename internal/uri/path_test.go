package uri

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// pathCases are the spellings of the path table: want "" means refused.
var pathCases = []struct{ name, in, want string }{
	{"ok/plain", "/v1/accounts/42", "/v1/accounts/42"},
	{"ok/empty path", "", "/"},
	{"ok/trailing slash kept", "/v1/accounts/", "/v1/accounts/"},
	{"ok/unreserved percent-encodings decoded", "/v1/%61ccounts/%34%32", "/v1/accounts/42"},
	{"ok/encoded tilde decoded", "/%7Euser", "/~user"},
	{"ok/lower-case percent-encoding upper-cased", "/a%3fb", "/a%3Fb"},
	{"ok/mixed-case percent-encodings", "/caf%c3%A9", "/caf%C3%A9"},
	{"ok/raw non-ASCII percent-encoded", "/café", "/caf%C3%A9"},
	{"ok/raw space percent-encoded", "/a b", "/a%20b"},
	{"ok/dot segment removed", "/v1/./accounts/42", "/v1/accounts/42"},
	{"ok/dot-dot segment removed", "/v1/admin/../accounts/42", "/v1/accounts/42"},
	{"ok/encoded dot-dot removed", "/v1/admin/%2e%2E/accounts/42", "/v1/accounts/42"},
	{"ok/dot-dot cannot climb above root", "/../../v1/accounts/42", "/v1/accounts/42"},
	{"ok/trailing dot-dot keeps directory", "/v1/accounts/42/..", "/v1/accounts/"},
	{"ok/double slash merged", "/v1//accounts///42", "/v1/accounts/42"},
	{"ok/leading double slash merged", "//v1/accounts/42", "/v1/accounts/42"},
	{"ok/dot segment next to empty segment", "/v1/.//accounts/42", "/v1/accounts/42"},
	{"ok/path parameter kept for the policy", "/v1/accounts/42;jsessionid=x", "/v1/accounts/42;jsessionid=x"},
	{"ok/percent sign kept encoded", "/100%25", "/100%25"},
	{"ok/percent sign before non-hex", "/100%25zz", "/100%25zz"},
	{"ok/sub-delims kept", "/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
	{"fail/raw backslash", `/v1/accounts/42\..\..\admin\users`, ""},
	{"fail/encoded backslash", "/v1/accounts/42%5C..%5C..%5Cadmin%5Cusers", ""},
	{"fail/encoded backslash lower case", "/v1/accounts/42%5c..%5cadmin", ""},
	{"fail/encoded slash", "/v1/accounts/42%2F..%2F..%2Fadmin", ""},
	{"fail/encoded slash lower case", "/v1/accounts/a%2fb", ""},
	{"fail/double-encoded slash", "/v1/accounts/42%252F..%252Fadmin", ""},
	{"fail/double-encoded letter", "/v1/accounts/%2541", ""},
	{"fail/double encoding split over an unreserved encoding", "/v1/accounts/%25%32F", ""},
	{"fail/overlong slash", "/v1/accounts/%C0%AF", ""},
	{"fail/three-byte overlong slash", "/v1/accounts/%E0%80%AF", ""},
	{"fail/invalid UTF-8", "/v1/accounts/%FF", ""},
	{"fail/encoded surrogate", "/v1/accounts/%ED%A0%80", ""},
	{"fail/raw invalid UTF-8", "/v1/accounts/\xff", ""},
	{"fail/encoded NUL", "/v1/accounts/42%00", ""},
	{"fail/encoded newline", "/v1/accounts/42%0A", ""},
	{"fail/encoded tab", "/v1/accounts/42%09", ""},
	{"fail/encoded DEL", "/v1/accounts/42%7F", ""},
	{"fail/encoded C1 control", "/v1/accounts/42%C2%85", ""},
	{"fail/raw NUL", "/v1/accounts/42\x00", ""},
	{"fail/raw tab", "/v1/accounts/42\t", ""},
	{"fail/invalid percent-encoding", "/v1/accounts/%zz", ""},
	{"fail/truncated percent-encoding", "/v1/accounts/%4", ""},
	{"fail/dot-dot with parameters", "/v1/accounts/..;/admin/users", ""},
	{"fail/dot with parameters", "/v1/accounts/.;x/42", ""},
	{"fail/empty segment with parameters", "/v1/accounts/;x/42", ""},
	{"fail/dot-dot with encoded parameter", "/v1/accounts/..%3B/admin", ""},
	{"fail/dot-dot after an empty segment", "/v1/accounts//../admin", ""},
	{"fail/relative", "v1/accounts/42", ""},
}

func TestNormalizePath(t *testing.T) {
	tests := append(pathCases,
		struct{ name, in, want string }{"fail/too long", "/" + strings.Repeat("a", MaxLength), ""},
		struct{ name, in, want string }{"fail/too long once percent-encoded", "/" + strings.Repeat("{", MaxLength/2), ""},
		struct{ name, in, want string }{"ok/percent-encoded up to the limit", "/" + strings.Repeat("{", (MaxLength-1)/3), "/" + strings.Repeat("%7B", (MaxLength-1)/3)},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizePath(%q) = %q, want refused", tt.in, got)
				}
				if !errors.Is(err, ErrPathInvalid) {
					t.Fatalf("NormalizePath(%q): %v, want ErrPathInvalid", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizePath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// The path rules apply to a whole URL too, and a refused path is told apart
// from other malformed URLs.
func TestNormalizeRefusesPaths(t *testing.T) {
	for _, tt := range pathCases {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.HasPrefix(tt.in, "/") && tt.in != "" {
				return // another authority, not a path
			}
			u, err := Normalize("https://api.example.com" + tt.in + "?q=%2F")
			if tt.want == "" {
				if !errors.Is(err, ErrPathInvalid) {
					t.Fatalf("Normalize: %v, %v; want ErrPathInvalid", u, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if got := u.EscapedPath(); got != tt.want {
				t.Errorf("path %q, want %q", got, tt.want)
			}
			if u.RawQuery != "q=%2F" {
				t.Errorf("query %q, want it untouched", u.RawQuery)
			}
			again, err := Normalize(u.String())
			if err != nil || again.String() != u.String() {
				t.Errorf("normalising %q again gave %v, %v", u, again, err)
			}
		})
	}
	for _, raw := range []string{"https://a.example\\evil/x", "https://a.example/%zz?x", "not a url", "https://a.example/" + strings.Repeat("a", MaxLength)} {
		if _, err := Normalize(raw); err == nil {
			t.Errorf("Normalize(%q) passed", raw)
		}
	}
	if _, err := Normalize("https://a.example\\evil/x"); errors.Is(err, ErrPathInvalid) {
		t.Errorf("a malformed host is reported as a path problem: %v", err)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, tt := range pathCases {
		if len(tt.in) < 1024 {
			f.Add(tt.in)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			if !errors.Is(err, ErrPathInvalid) {
				t.Fatalf("NormalizePath(%q): %v does not wrap ErrPathInvalid", in, err)
			}
			return
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("%q -> %q does not start with /", in, out)
		}
		upper := strings.ToUpper(out)
		for _, bad := range []string{`\`, "%2F", "%5C", "%00", "//"} {
			if strings.Contains(upper, bad) {
				t.Fatalf("%q -> %q contains %q", in, out, bad)
			}
		}
		for seg := range strings.SplitSeq(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q keeps a dot segment", in, out)
			}
		}
		dec, err := url.PathUnescape(out)
		if err != nil {
			t.Fatalf("%q -> %q does not decode: %v", in, out, err)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("%q -> %q decodes to invalid UTF-8", in, out)
		}
	})
}

// TestRefuseFragment: a "#" anywhere in a request URL is refused, whatever
// follows it; an encoded one is a character like any other.
func TestRefuseFragment(t *testing.T) {
	for _, tt := range []struct {
		name, url string
		refused   bool
	}{
		{"ok/no fragment", "https://a.example/v1/accounts/42?x=1", false},
		{"ok/encoded hash", "https://a.example/v1/accounts/42%23", false},
		{"fail/fragment climbing", "https://a.example/v1/accounts/42#/../../admin", true},
		{"fail/fragment after the query", "https://a.example/v1/accounts/42?x=1#/../admin", true},
		{"fail/empty fragment", "https://a.example/v1/accounts/42#", true},
		{"fail/hash in the authority", "https://a.example#@b.example/x", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := RefuseFragment(tt.url)
			if (err != nil) != tt.refused || (err != nil && !errors.Is(err, ErrPathInvalid)) {
				t.Fatalf("RefuseFragment(%q) = %v, want refused %v", tt.url, err, tt.refused)
			}
		})
	}
}
