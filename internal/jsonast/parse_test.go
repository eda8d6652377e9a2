package jsonast

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		depth int
		want  string // ast text of the expected value; "" when an error is expected
		err   error
	}{
		{name: "ok/empty object", input: `{}`, depth: 1, want: `{}`},
		{name: "ok/empty array", input: `[]`, depth: 1, want: `[]`},
		{name: "ok/surrounding whitespace", input: " \t\r\n{\"a\" : 1 } \n", depth: 1, want: `{"a": 1}`},
		{name: "ok/scalars", input: `[true,false,null,"s",0,-1,1.5,2e3,-0.25E-2]`, depth: 1, want: `[true, false, null, "s", 0, -1, 1.5, 2e3, -0.25E-2]`},
		{name: "ok/top-level scalar at depth 0", input: `"x"`, depth: 0, want: `"x"`},
		{name: "ok/nesting at the limit", input: `{"a":{"b":[1]}}`, depth: 3, want: `{"a": {"b": [1]}}`},
		{name: "ok/big integer keeps its text", input: `123456789012345678901234567890`, depth: 1, want: `123456789012345678901234567890`},
		{name: "ok/escapes", input: `"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, depth: 1, want: `"\"\\/\b\f\n\r\té😀"`},
		{name: "ok/utf8 passthrough", input: `"héllo wörld ✓"`, depth: 1, want: `"héllo wörld ✓"`},
		{name: "ok/same name in sibling objects", input: `[{"a":1},{"a":2}]`, depth: 2, want: `[{"a": 1}, {"a": 2}]`},
		{name: "ok/same name at different depths", input: `{"a":{"a":1}}`, depth: 2, want: `{"a": {"a": 1}}`},
		{name: "ok/nul escape", input: `"a\u0000b"`, depth: 1, want: `"a\u0000b"`},

		{name: "fail/duplicate member", input: `{"alg":"ES256","alg":"none"}`, depth: 4, err: ErrDuplicateMember},
		{name: "fail/duplicate member nested", input: `{"a":[{"x":1,"y":2,"x":3}]}`, depth: 4, err: ErrDuplicateMember},
		{name: "fail/duplicate member via escape", input: `{"alg":1,"\u0061lg":2}`, depth: 4, err: ErrDuplicateMember},
		{name: "fail/duplicate member in large object", input: largeObject(40, true), depth: 4, err: ErrDuplicateMember},
		{name: "fail/nesting beyond the limit", input: `{"a":{"b":[1]}}`, depth: 2, err: ErrTooDeep},
		{name: "fail/any container at depth 0", input: `[]`, depth: 0, err: ErrTooDeep},
		{name: "fail/deep arrays", input: strings.Repeat("[", 10000) + strings.Repeat("]", 10000), depth: 16, err: ErrTooDeep},
		{name: "fail/empty input", input: ``, depth: 4, err: ErrSyntax},
		{name: "fail/only whitespace", input: "  \n", depth: 4, err: ErrSyntax},
		{name: "fail/trailing data", input: `{"a":1}{"b":2}`, depth: 4, err: ErrSyntax},
		{name: "fail/trailing garbage", input: `{"a":1} x`, depth: 4, err: ErrSyntax},
		{name: "fail/trailing comma in object", input: `{"a":1,}`, depth: 4, err: ErrSyntax},
		{name: "fail/trailing comma in array", input: `[1,]`, depth: 4, err: ErrSyntax},
		{name: "fail/single quotes", input: `{'a':1}`, depth: 4, err: ErrSyntax},
		{name: "fail/unquoted name", input: `{a:1}`, depth: 4, err: ErrSyntax},
		{name: "fail/missing colon", input: `{"a" 1}`, depth: 4, err: ErrSyntax},
		{name: "fail/unterminated object", input: `{"a":1`, depth: 4, err: ErrSyntax},
		{name: "fail/unterminated array", input: `[1`, depth: 4, err: ErrSyntax},
		{name: "fail/unterminated string", input: `"abc`, depth: 4, err: ErrSyntax},
		{name: "fail/invalid utf8", input: "\"\xff\"", depth: 4, err: ErrSyntax},
		{name: "fail/invalid utf8 after escape", input: "\"\\n\xc3\x28\"", depth: 4, err: ErrSyntax},
		{name: "fail/overlong utf8", input: "\"\xc0\xaf\"", depth: 4, err: ErrSyntax},
		{name: "fail/utf8 surrogate bytes", input: "\"\xed\xa0\x80\"", depth: 4, err: ErrSyntax},
		{name: "fail/raw control character", input: "\"a\nb\"", depth: 4, err: ErrSyntax},
		{name: "fail/lone high surrogate", input: `"\ud83d"`, depth: 4, err: ErrSyntax},
		{name: "fail/lone low surrogate", input: `"\ude00"`, depth: 4, err: ErrSyntax},
		{name: "fail/high surrogate then non-surrogate", input: `"\ud83d\u0041"`, depth: 4, err: ErrSyntax},
		{name: "fail/short unicode escape", input: `"\u12"`, depth: 4, err: ErrSyntax},
		{name: "fail/unknown escape", input: `"\x41"`, depth: 4, err: ErrSyntax},
		{name: "fail/leading zero", input: `01`, depth: 4, err: ErrSyntax},
		{name: "fail/leading plus", input: `+1`, depth: 4, err: ErrSyntax},
		{name: "fail/bare minus", input: `-`, depth: 4, err: ErrSyntax},
		{name: "fail/dot without digits", input: `1.`, depth: 4, err: ErrSyntax},
		{name: "fail/exponent without digits", input: `1e+`, depth: 4, err: ErrSyntax},
		{name: "fail/huge exponent", input: `1e999999999999`, depth: 4, err: ErrSyntax},
		{name: "fail/NaN", input: `NaN`, depth: 4, err: ErrSyntax},
		{name: "fail/truncated literal", input: `tru`, depth: 4, err: ErrSyntax},
		{name: "fail/misspelled literal", input: `nul1`, depth: 4, err: ErrSyntax},
		{name: "fail/byte order mark", input: "\xef\xbb\xbf{}", depth: 4, err: ErrSyntax},
		{name: "fail/comment", input: `{} // c`, depth: 4, err: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input), tt.depth)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse() error = %v, want %v", err, tt.err)
				}
				if got != nil {
					t.Fatalf("Parse() returned a value with an error: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			want := ast.MustParseTerm(tt.want).Value
			if got.Compare(want) != 0 {
				t.Fatalf("Parse() = %v, want %v", got, want)
			}
		})
	}
}

func TestParseTypes(t *testing.T) {
	v, err := Parse([]byte(`{"o":{},"a":[1],"n":1.25,"s":"x","b":true,"z":null}`), 2)
	if err != nil {
		t.Fatal(err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		t.Fatalf("top level is %T, want ast.Object", v)
	}
	checks := map[string]func(ast.Value) bool{
		"o": func(v ast.Value) bool { _, ok := v.(ast.Object); return ok },
		"a": func(v ast.Value) bool { _, ok := v.(*ast.Array); return ok },
		"n": func(v ast.Value) bool { n, ok := v.(ast.Number); return ok && string(n) == "1.25" },
		"s": func(v ast.Value) bool { s, ok := v.(ast.String); return ok && s == "x" },
		"b": func(v ast.Value) bool { b, ok := v.(ast.Boolean); return ok && bool(b) },
		"z": func(v ast.Value) bool { _, ok := v.(ast.Null); return ok },
	}
	for k, check := range checks {
		term := obj.Get(ast.StringTerm(k))
		if term == nil || !check(term.Value) {
			t.Errorf("member %q = %v, unexpected", k, term)
		}
	}
}

func TestParseEmptyContainersAreNotShared(t *testing.T) {
	a, err := Parse([]byte(`{}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	a.(ast.Object).Insert(ast.StringTerm("k"), ast.StringTerm("v"))
	b, err := Parse([]byte(`{}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.(ast.Object).Len() != 0 {
		t.Fatal("mutating one parsed empty object changed another")
	}
}

func TestParseErrorNamesTruncated(t *testing.T) {
	name := strings.Repeat("n", 5000)
	_, err := Parse([]byte(`{"`+name+`":1,"`+name+`":2}`), 2)
	if !errors.Is(err, ErrDuplicateMember) {
		t.Fatalf("error = %v, want ErrDuplicateMember", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("error message is %d bytes long, want it bounded", len(err.Error()))
	}
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{"iss":"https://as.example","aud":["a","b"],"exp":1767225600,"scope":"read write","cnf":{"jkt":"abc"}}`,
		`{"n":-0,"f":1.0,"e":1E+2,"big":1e308,"s":"\u00e9\t"}`,
		largeObject(40, false),
	}
	for _, in := range inputs {
		got, err := Parse([]byte(in), 8)
		if err != nil {
			t.Fatalf("Parse(%s): %v", in, err)
		}
		want := reference(t, []byte(in))
		if got.Compare(want) != 0 {
			t.Errorf("Parse(%s) = %v, want %v", in, got, want)
		}
	}
}

func largeObject(n int, duplicate bool) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	if duplicate {
		b.WriteString(`,"k` + strings.Repeat("x", n-3) + `":2`)
	}
	b.WriteByte('}')
	return b.String()
}

// reference parses data the slow, permissive way: encoding/json with
// UseNumber, then ast.InterfaceToValue.
func reference(t testing.TB, data []byte) ast.Value {
	t.Helper()
	v, err := referenceValue(data)
	if err != nil {
		t.Fatalf("reference parse: %v", err)
	}
	return v
}

func referenceValue(data []byte) (ast.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return nil, errors.New("trailing data")
	}
	return ast.InterfaceToValue(x)
}
