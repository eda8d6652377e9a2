package jsonast

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Sentinel errors, matched with errors.Is. The returned errors wrap one of
// them together with the byte offset and a short detail.
var (
	// ErrSyntax reports input that is not exactly one valid JSON value in
	// valid UTF-8 (this includes trailing data and out-of-range numbers).
	ErrSyntax = errors.New("jsonast: invalid JSON")
	// ErrDuplicateMember reports an object that names a member twice.
	ErrDuplicateMember = errors.New("jsonast: duplicate object member")
	// ErrTooDeep reports nesting of objects and arrays beyond the limit.
	ErrTooDeep = errors.New("jsonast: nesting too deep")
)

// maxNameInError bounds how much of a member name an error repeats.
const maxNameInError = 64

// dupMapThreshold is the member count from which duplicate detection
// switches from a linear scan to a map.
const dupMapThreshold = 16

// Parse parses data, which must hold exactly one JSON value (surrounding
// whitespace allowed), into an ast.Value: objects become ast.Object, arrays
// *ast.Array, numbers ast.Number with their literal text, and strings,
// booleans and null their ast counterparts.
//
// maxDepth bounds the nesting of objects and arrays: a top-level object or
// array is at depth 1, so with maxDepth 1 `{"a":1}` passes and `{"a":[]}`
// does not. A maxDepth below 1 admits scalars only.
//
// The returned value never aliases data (strings share one private copy of
// it), so data may be reused once Parse returns. Scalars may be OPA's
// process-wide interned terms: treat the value as read-only once it is
// shared.
func Parse(data []byte, maxDepth int) (ast.Value, error) {
	// One conversion up front: strings without escapes and number literals
	// are then substrings of it and cost no further allocation.
	p := parser{data: string(data), maxDepth: maxDepth}
	p.skipSpace()
	t, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail(ErrSyntax, "trailing data after the value")
	}
	return t.Value, nil
}

// parser is a single-use recursive-descent scanner. Recursion depth is
// bounded by maxDepth.
type parser struct {
	data     string
	pos      int
	maxDepth int
	// pairs is a stack of object members under construction; each object
	// uses the tail it appended and truncates it when done. ast.NewObject
	// copies the pairs, so the backing array can be reused.
	pairs [][2]*ast.Term
	// elems is the same kind of stack for array elements (copied out,
	// because ast.NewArray keeps the slice it is given).
	elems []*ast.Term
	// buf is scratch space for strings that contain escapes.
	buf []byte
}

func (p *parser) fail(kind error, detail string) error {
	return fmt.Errorf("%w at offset %d: %s", kind, p.pos, detail)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (*ast.Term, error) {
	if p.pos >= len(p.data) {
		return nil, p.fail(ErrSyntax, "unexpected end of input")
	}
	switch c := p.data[p.pos]; c {
	case '{':
		if depth >= p.maxDepth {
			return nil, p.fail(ErrTooDeep, fmt.Sprintf("more than %d levels", p.maxDepth))
		}
		return p.object(depth + 1)
	case '[':
		if depth >= p.maxDepth {
			return nil, p.fail(ErrTooDeep, fmt.Sprintf("more than %d levels", p.maxDepth))
		}
		return p.array(depth + 1)
	case '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.InternedTerm(s), nil
	case 't':
		return p.literal("true", ast.InternedBooleanTrue)
	case 'f':
		return p.literal("false", ast.InternedBooleanFalse)
	case 'n':
		return p.literal("null", ast.InternedNullTerm)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
		return nil, p.fail(ErrSyntax, fmt.Sprintf("unexpected character %q", c))
	}
}

func (p *parser) literal(word string, t *ast.Term) (*ast.Term, error) {
	if len(p.data)-p.pos < len(word) || p.data[p.pos:p.pos+len(word)] != word {
		return nil, p.fail(ErrSyntax, "invalid literal")
	}
	p.pos += len(word)
	return t, nil
}

func (p *parser) object(depth int) (*ast.Term, error) {
	p.pos++ // '{'
	start := len(p.pairs)
	defer func() { p.pairs = p.pairs[:start] }()
	var seen map[string]struct{}

	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return ast.NewTerm(ast.NewObject()), nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail(ErrSyntax, "expected a member name")
		}
		keyPos := p.pos
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		members := p.pairs[start:]
		switch {
		case seen != nil:
			if _, dup := seen[name]; dup {
				return nil, p.duplicate(keyPos, name)
			}
			seen[name] = struct{}{}
		case len(members) < dupMapThreshold:
			for _, m := range members {
				if string(m[0].Value.(ast.String)) == name {
					return nil, p.duplicate(keyPos, name)
				}
			}
		default:
			seen = make(map[string]struct{}, 2*len(members))
			for _, m := range members {
				seen[string(m[0].Value.(ast.String))] = struct{}{}
			}
			if _, dup := seen[name]; dup {
				return nil, p.duplicate(keyPos, name)
			}
			seen[name] = struct{}{}
		}

		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail(ErrSyntax, "expected ':' after a member name")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.pairs = append(p.pairs, [2]*ast.Term{ast.InternedTerm(name), v})

		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(ErrSyntax, "unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return ast.NewTerm(ast.NewObject(p.pairs[start:]...)), nil
		default:
			return nil, p.fail(ErrSyntax, "expected ',' or '}' in an object")
		}
	}
}

func (p *parser) duplicate(at int, name string) error {
	if len(name) > maxNameInError {
		name = name[:maxNameInError] + "..."
	}
	p.pos = at
	return p.fail(ErrDuplicateMember, fmt.Sprintf("member %q appears more than once", name))
}

func (p *parser) array(depth int) (*ast.Term, error) {
	p.pos++ // '['
	start := len(p.elems)
	defer func() { p.elems = p.elems[:start] }()

	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return ast.NewTerm(ast.NewArray()), nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)

		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail(ErrSyntax, "unterminated array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			elems := make([]*ast.Term, len(p.elems)-start)
			copy(elems, p.elems[start:])
			return ast.NewTerm(ast.NewArray(elems...)), nil
		default:
			return nil, p.fail(ErrSyntax, "expected ',' or ']' in an array")
		}
	}
}

// number scans a number per RFC 8259 §6 and keeps its literal text.
func (p *parser) number() (*ast.Term, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.fail(ErrSyntax, "invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.fail(ErrSyntax, "invalid number: digit expected after '.'")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.fail(ErrSyntax, "invalid number: digit expected in exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.pos = i
	text := d[start:i]
	if t := ast.InternedIntNumberTermFromString(text); t != nil {
		return t, nil
	}
	n, err := ast.NumberChecked(text)
	if err != nil {
		p.pos = start
		return nil, p.fail(ErrSyntax, "number out of range")
	}
	return ast.NewTerm(n), nil
}

// str scans a string starting at the opening quote and returns its
// decoded value. Invalid UTF-8, raw control characters, unknown escapes and
// unpaired surrogates are errors.
func (p *parser) str() (string, error) {
	d := p.data
	start := p.pos + 1
	i := start
	// Fast path: no escapes.
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return d[start:i], nil
		case c == '\\':
			return p.strEscaped(start, i)
		case c < 0x20:
			p.pos = i
			return "", p.fail(ErrSyntax, "control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(d[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return "", p.fail(ErrSyntax, "invalid UTF-8 in string")
			}
			i += size
		}
	}
	p.pos = i
	return "", p.fail(ErrSyntax, "unterminated string")
}

// strEscaped continues str from the first backslash at i, decoding into
// the scratch buffer.
func (p *parser) strEscaped(start, i int) (string, error) {
	d := p.data
	buf := append(p.buf[:0], d[start:i]...)
	defer func() { p.buf = buf[:0] }()
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(buf), nil
		case c == '\\':
			if i+1 >= len(d) {
				p.pos = i
				return "", p.fail(ErrSyntax, "unterminated escape")
			}
			switch e := d[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
				i += 2
			case 'b':
				buf = append(buf, '\b')
				i += 2
			case 'f':
				buf = append(buf, '\f')
				i += 2
			case 'n':
				buf = append(buf, '\n')
				i += 2
			case 'r':
				buf = append(buf, '\r')
				i += 2
			case 't':
				buf = append(buf, '\t')
				i += 2
			case 'u':
				r, n, err := p.unicodeEscape(i)
				if err != nil {
					return "", err
				}
				buf = utf8.AppendRune(buf, r)
				i += n
			default:
				p.pos = i
				return "", p.fail(ErrSyntax, "invalid escape in string")
			}
		case c < 0x20:
			p.pos = i
			return "", p.fail(ErrSyntax, "control character in string")
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(d[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return "", p.fail(ErrSyntax, "invalid UTF-8 in string")
			}
			buf = append(buf, d[i:i+size]...)
			i += size
		}
	}
	p.pos = i
	return "", p.fail(ErrSyntax, "unterminated string")
}

// unicodeEscape decodes \uXXXX at i (and a following low surrogate escape
// when the first one is a high surrogate). It returns the rune and the
// number of bytes consumed.
func (p *parser) unicodeEscape(i int) (rune, int, error) {
	r, ok := hex4(p.data, i+2)
	if !ok {
		p.pos = i
		return 0, 0, p.fail(ErrSyntax, "invalid \\u escape")
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		p.pos = i
		return 0, 0, p.fail(ErrSyntax, "unpaired surrogate in \\u escape")
	case r >= 0xD800 && r <= 0xDBFF:
		j := i + 6
		if j+1 >= len(p.data) || p.data[j] != '\\' || p.data[j+1] != 'u' {
			p.pos = i
			return 0, 0, p.fail(ErrSyntax, "unpaired surrogate in \\u escape")
		}
		lo, ok := hex4(p.data, j+2)
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			p.pos = i
			return 0, 0, p.fail(ErrSyntax, "unpaired surrogate in \\u escape")
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12, nil
	default:
		return r, 6, nil
	}
}

func hex4(d string, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for j := i; j < i+4; j++ {
		c := d[j]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
