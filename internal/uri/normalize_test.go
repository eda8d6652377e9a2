package uri

import "testing"

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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := Normalize(tt.in); err == nil {
				t.Fatalf("Normalize(%q) = %v, want an error", tt.in, u)
			}
		})
	}
}
