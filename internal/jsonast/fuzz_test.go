package jsonast

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

const fuzzDepth = 16

func FuzzParse(f *testing.F) {
	seeds := []string{
		`{}`, `[]`, `null`, `true`, `-0.5e+3`, `"a\u00e9\ud83d\ude00"`,
		`{"alg":"ES256","alg":"none"}`,
		`{"iss":"https://as.example","aud":["api"],"exp":1767225600,"cnf":{"jkt":"x"}}`,
		`[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]`,
		`{"a":1} {"b":2}`, "\"\xff\"", `1e999999999`, `{"a":{"a":{"a":1}}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(data, fuzzDepth)
		want, refErr := referenceValue(data)
		if err == nil {
			if got == nil {
				t.Fatal("nil value without an error")
			}
			if !utf8.Valid(data) {
				t.Fatal("accepted invalid UTF-8")
			}
			if refErr != nil {
				t.Fatalf("accepted input that encoding/json rejects (%v): %v", refErr, got)
			}
			if got.Compare(want) != 0 {
				t.Fatalf("Parse = %v, encoding/json = %v", got, want)
			}
			return
		}
		if got != nil {
			t.Fatal("value returned with an error")
		}
		if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrDuplicateMember) && !errors.Is(err, ErrTooDeep) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// Anything encoding/json accepts, in valid UTF-8, without \u escapes
		// (lone surrogates are refused here but replaced there) and within the
		// depth limit, may only be refused for a duplicate member, which
		// encoding/json cannot see.
		if refErr == nil && utf8.Valid(data) && !bytes.Contains(data, []byte(`\u`)) && depth(want) <= fuzzDepth {
			if !errors.Is(err, ErrDuplicateMember) {
				t.Fatalf("refused valid JSON: %v", err)
			}
		}
	})
}

func depth(v ast.Value) int {
	switch v := v.(type) {
	case ast.Object:
		d := 0
		for _, k := range v.Keys() {
			d = max(d, depth(v.Get(k).Value))
		}
		return d + 1
	case *ast.Array:
		d := 0
		for i := range v.Len() {
			d = max(d, depth(v.Elem(i).Value))
		}
		return d + 1
	default:
		return 0
	}
}
