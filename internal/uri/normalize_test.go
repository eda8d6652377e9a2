package uri

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ok/already normal", "https://api.example.com/v1/accounts/42", "https://api.example.com/v1/accounts/42"},
		{"ok/scheme and host lower-cased, default port dropped", "HTTPS://Resource.Example.ORG:443/x", "https://resource.example.org/x"},
		{"ok/http default port dropped", "http://a.example:80/x", "http://a.example/x"},
		{"ok/other port kept", "https://a.example:8443/x", "https://a.example:8443/x"},
		{"ok/empty path becomes slash", "https://a.example", "https://a.example/"},
		{"ok/dot segments removed", "https://a.example/a/./b/../c", "https://a.example/a/c"},
		{"ok/dot segments cannot climb above root", "https://a.example/../../etc", "https://a.example/etc"},
		{"ok/trailing dot keeps directory", "https://a.example/a/.", "https://a.example/a/"},
		{"ok/unreserved percent-encoding decoded", "https://a.example/%7Euser/%41", "https://a.example/~user/A"},
		{"ok/reserved percent-encoding upper-cased", "https://a.example/a%3fb%c3%a9", "https://a.example/a%3Fb%C3%A9"},
		{"ok/slashes merged", "https://a.example//a///b/", "https://a.example/a/b/"},
		{"ok/query kept, fragment dropped", "https://a.example/x?b=1&a=2#frag", "https://a.example/x?b=1&a=2"},
		{"ok/trailing slash kept", "https://a.example/x/", "https://a.example/x/"},
		{"ok/ipv6 literal", "https://[::1]:8443/x", "https://[::1]:8443/x"},
		// A host's spellings that name the same host to a gateway (nginx
		// strips the root's dot) are one host to route matching.
		{"ok/host with the root's trailing dot", "https://API.example.com./x", "https://api.example.com/x"},
		{"ok/host with a trailing dot and a port", "https://api.example.com.:8443/x", "https://api.example.com:8443/x"},
		{"ok/host with a trailing dot and the default port", "https://api.example.com.:443/x", "https://api.example.com/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := Normalize(tt.in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tt.in, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"fail/relative", "/v1/accounts"},
		{"fail/no host", "https:///x"},
		{"fail/other scheme", "ftp://a.example/x"},
		{"fail/opaque", "mailto:a@example.com"},
		{"fail/userinfo", "https://user:pw@a.example/x"},
		{"fail/bad port", "https://a.example:99999/x"},
		{"fail/bad percent-encoding", "https://a.example/%zz"},
		{"fail/encoded slash", "https://a.example/a%2fb"},
		{"fail/backslash", "https://a.example/a\\..\\b"},
		{"fail/too long", "https://a.example/" + string(make([]byte, MaxLength))},
		// Host spellings that parsers read as other hosts or refuse.
		{"fail/host with two trailing dots", "https://api.example.com../x"},
		{"fail/host with an empty label", "https://api..example.com/x"},
		{"fail/host with a leading dot", "https://.api.example.com/x"},
		{"fail/host only a dot", "https://./x"},
		{"fail/host with a fullwidth dot", "https://api\uff0eexample.com/x"},
		{"fail/host not in ASCII", "https://b\u00fccher.example/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := Normalize(tt.in); err == nil {
				t.Fatalf("Normalize(%q) = %v, want an error", tt.in, u)
			}
		})
	}
}

// FuzzNormalize: Normalize never panics, and what it accepts is in normal
// form: normalising it again gives it back, and its host is lower-case
// ASCII without an empty label or a trailing dot.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"https://API.example.com./x", "https://a..b/x", "http://[::1]:80/a/../b?q=1", "https://a.example:0443/%7e", "https://\u00fc./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Normalize(s)
		if err != nil {
			return
		}
		if h := u.Hostname(); !strings.Contains(h, ":") &&
			(h != strings.ToLower(h) || strings.HasSuffix(h, ".") || strings.Contains(h, "..") || strings.HasPrefix(h, ".")) {
			t.Fatalf("%q: host %q is not normal", s, h)
		}
		for i := 0; i < len(u.Host); i++ {
			if u.Host[i] >= 0x80 {
				t.Fatalf("%q: host %q is not ASCII", s, u.Host)
			}
		}
		v, err := Normalize(u.String())
		if err != nil || v.String() != u.String() {
			t.Fatalf("%q: %q normalises to %v, %v", s, u, v, err)
		}
	})
}
