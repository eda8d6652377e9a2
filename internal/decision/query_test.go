package decision

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// queryNames are the names of the policy input's query object for rawQuery.
func queryNames(t testing.TB, rawQuery string) []string {
	t.Helper()
	var names []string
	queryTerm(&url.URL{RawQuery: rawQuery}).Value.(ast.Object).Foreach(func(k, _ *ast.Term) {
		names = append(names, string(k.Value.(ast.String)))
	})
	slices.Sort(names)
	return names
}

// TestQueryNamesEveryParameterTheURLCarries: the query object of the
// policy input holds every parameter of the URL, also those url.ParseQuery
// drops (";" separators, bad percent-encodings), so that neither a policy
// nor the decision-log mask misses one the URL still carries.
func TestQueryNamesEveryParameterTheURLCarries(t *testing.T) {
	tests := []struct {
		name, query string
		want        []string
	}{
		{"ok/plain pairs", "page=2&size=10", []string{"page", "size"}},
		{"ok/encoded name", "access%5Ftoken=t", []string{"access_token"}},
		{"ok/repeated name keeps its values once", "a=1&a=2", []string{"a"}},
		{"fail/pair ending in a semicolon", "access_token=t;", []string{"access_token"}},
		{"fail/pairs split by a semicolon", "page=1;access_token=t", []string{"access_token", "page"}},
		{"fail/bad escape in the value", "access_token=t%zz&page=1", []string{"access_token", "page"}},
		{"fail/bad escape in the name", "access_token%zz=t", []string{"access_token%zz"}},
		{"fail/encoded semicolon stays in the value", "a=1%3Bcode=c&b;code=d", []string{"a", "b", "code"}},
		{"fail/only separators", ";&;", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queryNames(t, tt.query); !slices.Equal(got, tt.want) {
				t.Errorf("query %q: names %q, want %q", tt.query, got, tt.want)
			}
		})
	}
	t.Run("ok/valid pairs are not added twice", func(t *testing.T) {
		v := queryTerm(&url.URL{RawQuery: "a=1&b=2;c=3"}).Value.(ast.Object).Get(ast.StringTerm("a"))
		if v == nil || v.Value.(*ast.Array).Len() != 1 {
			t.Errorf("a = %v, want [\"1\"]", v)
		}
	})
}

// FuzzQueryTerm: every name a ";"- or "&"-separated query carries is a
// name of the query object, as it decodes or as it is.
func FuzzQueryTerm(f *testing.F) {
	for _, s := range []string{"a=1", "access_token=t;", "a=1;b=2&c=%zz", "%zz=1", "==;&&", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 1024 {
			return
		}
		names := queryNames(t, q)
		for part := range strings.FieldsFuncSeq(q, func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(part, "=")
			if !slices.Contains(names, k) && !slices.Contains(names, lenientUnescape(k)) {
				t.Fatalf("query %q: %q is not among the names %q", q, k, names)
			}
		}
	})
}
