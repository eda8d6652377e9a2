// Package destination compiles a policy's destination table
// (data.pdp.destinations) into a matcher that finds the destination a
// messaging operation is for without scanning the table: per broker, a tree
// on the destination's "."-separated tokens (NATS subjects, RabbitMQ names
// and topic patterns), or a map of exact names and a trie of prefixes (any
// other broker). It gives exactly the answer of the matching written in
// Rego (rego/lib/destination_reference_test.rego): the first destination of
// the table that matches applies, and a table with a malformed destination
// matches nothing.
//
// The syntax of a destination in the table depends on its broker:
//
//   - "nats": a subject, tokens separated by "."; a token "*" matches one
//     token, a last token ">" one or more. Tokens are never empty, and a
//     token holding "*" or ">" is one of them alone.
//   - "rabbitmq": an exchange or queue name, matched exactly, or a topic
//     routing-key pattern: a word "*" matches one word, "#" zero or more
//     (words may be empty, as in RabbitMQ). A word holding "*" or "#" is
//     one of them alone.
//   - any other broker (kafka, ...): a name matched exactly, or, with one
//     "*" as its last character, every name that starts with what comes
//     before it (zero or more characters more, dots included: "orders.*"
//     matches "orders.created" and "orders."; Kafka's prefixed ACLs).
//
// Every destination is a string of at most MaxBytes bytes and MaxTokens
// "."-separated tokens, without spaces or control characters.
//
// The destination a message names may hold wildcards itself (a NATS
// subscription to "orders.*" or "orders.>", a RabbitMQ binding key): a
// table entry matches it only when it matches every destination it stands
// for, token by token: a wildcard of the entry covers the same wildcard or
// a narrower one ("*" covers "*", ">" and "#" cover anything), a literal
// token only the same literal. So "orders.created" never matches the
// subscription "orders.*", "orders.*" matches it and "orders.>" too, and
// "orders.*" never matches "orders.>". The comparison is token by token,
// so it may refuse a pattern that would in fact cover the query (RabbitMQ
// "#.*" against "*.#"): it never allows more than the entry grants.
//
// A destination asked about that is empty, longer than the bounds, holds a
// space or a control character, or (NATS) has an empty token or a ">" before
// its last token matches nothing.
package destination

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Bounds of a destination, in the table and in a message.
const (
	MaxBytes  = 1024
	MaxTokens = 64
)

// Brokers with a syntax of their own; any other broker name gets the
// generic one (exact names, trailing "*").
const (
	NATS     = "nats"
	RabbitMQ = "rabbitmq"
)

// Operations a destination can be matched for: the operations of a
// message but connect, which names no destination (configure: RabbitMQ's
// declaring or deleting an exchange or queue). An entry without
// "operations" is for all of them.
var Operations = []string{"publish", "subscribe", "consume", "configure"}

var (
	brokerSyntax = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	// printable: no space nor control character, in the table and in a
	// message.
	printable = regexp.MustCompile(`^[^\x00-\x20\x7f]+$`)
	// The well-formed destinations of each syntax (the Rego reference uses
	// the same expressions).
	natsSyntax    = regexp.MustCompile(`^(>|([^.*>]+|\*)(\.([^.*>]+|\*))*(\.>)?)$`)
	rabbitSyntax  = regexp.MustCompile(`^([^.*#]*|\*|#)(\.([^.*#]*|\*|#))*$`)
	genericSyntax = regexp.MustCompile(`^[^*]*\*?$`)
)

// Table is a compiled destination table. It is immutable and safe to share.
type Table struct {
	// broken: indexes of the destinations that are not well-formed,
	// ascending.
	broken  []int
	entries []entry
	// tokens: the token trees of the nats and rabbitmq destinations;
	// generic: the names and prefixes of every other broker's.
	tokens  map[string]*node
	generic map[string]*names
}

type entry struct {
	anyOperation bool
	operations   []string
}

// node is a place in a token tree: the destinations whose pattern is made
// of the tokens that lead here.
type node struct {
	lit  map[string]*node
	star *node // "*": one token (not a ">" or "#" of the query)
	hash *node // "#" (rabbitmq): zero or more tokens, of any kind
	// loop: the node is a "#" edge's: it consumes any further token and
	// stays.
	loop bool
	// end: destinations whose whole pattern leads here; tail: those whose
	// pattern goes on with a last ">" (nats): one or more tokens, of any
	// kind. Each ascending.
	end  []int
	tail []int
}

// names holds a generic broker's destinations: exact names, and a trie on
// the bytes of the prefixes of those that end with "*".
type names struct {
	exact  map[string][]int
	prefix *trie
}

type trie struct {
	next map[byte]*trie
	here []int // ascending
}

// Compile compiles the destination table (the value of
// data.pdp.destinations once it is an array). A destination that is not
// well-formed does not stop it: it is listed by Broken, and the table
// matches nothing.
func Compile(destinations *ast.Array) *Table {
	t := &Table{tokens: map[string]*node{}, generic: map[string]*names{}}
	n := destinations.Len()
	t.entries = make([]entry, n)
	for i := range n {
		d, ok := destinations.Elem(i).Value.(ast.Object)
		if !ok || !WellFormed(d) {
			t.broken = append(t.broken, i)
			continue
		}
		if len(t.broken) > 0 {
			continue // the table matches nothing: only its broken entries count
		}
		t.add(i, d)
	}
	if len(t.broken) > 0 {
		t.entries, t.tokens, t.generic = nil, nil, nil
	}
	return t
}

// Broken returns the indexes of the table's destinations that are not
// well-formed, ascending; none for a well-formed table.
func (t *Table) Broken() []int { return t.broken }

// Len is the number of destinations in the table.
func (t *Table) Len() int { return len(t.entries) }

func (t *Table) add(i int, d ast.Object) {
	broker := string(d.Get(ast.InternedTerm("broker")).Value.(ast.String))
	dest := string(d.Get(ast.InternedTerm("destination")).Value.(ast.String))
	e := &t.entries[i]
	if ops, ok := get(d, "operations").(*ast.Array); ok {
		for j := range ops.Len() {
			e.operations = append(e.operations, string(ops.Elem(j).Value.(ast.String)))
		}
	} else {
		e.anyOperation = true
	}

	if broker != NATS && broker != RabbitMQ {
		g := t.generic[broker]
		if g == nil {
			g = &names{exact: map[string][]int{}, prefix: &trie{}}
			t.generic[broker] = g
		}
		name, ok := strings.CutSuffix(dest, "*")
		if !ok {
			g.exact[name] = append(g.exact[name], i)
			return
		}
		at := g.prefix
		for k := range len(name) {
			next := at.next[name[k]]
			if next == nil {
				if at.next == nil {
					at.next = map[byte]*trie{}
				}
				next = &trie{}
				at.next[name[k]] = next
			}
			at = next
		}
		at.here = append(at.here, i)
		return
	}

	at := t.tokens[broker]
	if at == nil {
		at = &node{}
		t.tokens[broker] = at
	}
	tokens := strings.Split(dest, ".")
	for k, tok := range tokens {
		switch {
		case broker == NATS && tok == ">" && k == len(tokens)-1:
			at.tail = append(at.tail, i)
			return
		case tok == "*":
			if at.star == nil {
				at.star = &node{}
			}
			at = at.star
		case broker == RabbitMQ && tok == "#":
			if at.hash == nil {
				at.hash = &node{loop: true}
			}
			at = at.hash
		default:
			if at.lit == nil {
				at.lit = map[string]*node{}
			}
			next := at.lit[tok]
			if next == nil {
				next = &node{}
				at.lit[tok] = next
			}
			at = next
		}
	}
	at.end = append(at.end, i)
}

// Match returns the index of the first destination of the table that
// matches a message of broker and operation to destination, and false when
// none does or the table has broken destinations.
func (t *Table) Match(broker, operation, destination string) (int, bool) {
	if len(t.broken) > 0 || len(t.entries) == 0 || !queryOK(broker, destination) {
		return 0, false
	}
	m := matcher{t: t, operation: operation, best: len(t.entries), many: "#"}
	if broker == NATS {
		m.many = ">"
	}
	if broker == NATS || broker == RabbitMQ {
		if root := t.tokens[broker]; root != nil {
			m.walk(root, destination)
		}
	} else if g := t.generic[broker]; g != nil {
		at := g.prefix
		m.first(at.here)
		for k := 0; k < len(destination) && at != nil; k++ {
			if at = at.next[destination[k]]; at != nil {
				m.first(at.here)
			}
		}
		m.first(g.exact[destination])
	}
	if m.best == len(t.entries) {
		return 0, false
	}
	return m.best, true
}

// queryOK reports whether destination, as a message names it, can match a
// destination of broker at all.
func queryOK(broker, destination string) bool {
	if destination == "" || len(destination) > MaxBytes || strings.Count(destination, ".") >= MaxTokens {
		return false
	}
	for _, r := range destination {
		if r <= 0x20 || r == 0x7f {
			return false
		}
	}
	if broker == NATS {
		// Tokens are never empty, and ">" comes last.
		for tok, rest := range tokensOf(destination) {
			if tok == "" || tok == ">" && rest {
				return false
			}
		}
	}
	return true
}

// tokensOf yields the "."-separated tokens of s, each with whether more
// follow.
func tokensOf(s string) func(func(string, bool) bool) {
	return func(yield func(string, bool) bool) {
		for {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				yield(s, false)
				return
			}
			if !yield(s[:i], true) {
				return
			}
			s = s[i+1:]
		}
	}
}

type matcher struct {
	t         *Table
	operation string
	best      int
	// many: the broker's wildcard of any number of tokens, which a "*"
	// of the table does not cover in a query.
	many string
	// states, next: the nodes the tokens read so far lead to, without
	// repeats.
	states, next []*node
}

// walk runs the query's tokens through the tree from root: the set of nodes
// they can lead to, step by step (a "#" can take any number of tokens, so
// the tree is read as an automaton, never with backtracking).
func (m *matcher) walk(root *node, destination string) {
	m.states = add(m.states[:0], root)
	for tok := range tokensOf(destination) {
		m.next = m.next[:0]
		for _, s := range m.states {
			m.first(s.tail) // ">" takes this token and every one after it
			if s.loop {
				m.next = add(m.next, s)
			}
			if next := s.lit[tok]; next != nil {
				m.next = add(m.next, next)
			}
			if s.star != nil && tok != m.many {
				m.next = add(m.next, s.star)
			}
		}
		m.states, m.next = m.next, m.states
		if len(m.states) == 0 {
			return
		}
	}
	for _, s := range m.states {
		m.first(s.end)
	}
}

// add adds n to states, and the "#" nodes that follow it (a "#" can take
// no token), unless it is there already.
func add(states []*node, n *node) []*node {
	for ; n != nil; n = n.hash {
		if !slices.Contains(states, n) {
			states = append(states, n)
		}
	}
	return states
}

// first takes the first destination of candidates (ascending) open to the
// operation, if it comes before the best found so far.
func (m *matcher) first(candidates []int) {
	for _, i := range candidates {
		if i >= m.best {
			return
		}
		e := &m.t.entries[i]
		if e.anyOperation && slices.Contains(Operations, m.operation) || slices.Contains(e.operations, m.operation) {
			m.best = i
			return
		}
	}
}

// get returns the value of key in o, null when it is absent.
func get(o ast.Object, key string) ast.Value {
	if v := o.Get(ast.InternedTerm(key)); v != nil {
		return v.Value
	}
	return ast.Null{}
}

// WellFormed reports whether d is a destination the matcher can rely on,
// as well_formed in the Rego reference: a table with one that is not
// matches nothing.
func WellFormed(d ast.Object) bool {
	broker, ok := get(d, "broker").(ast.String)
	if !ok || !brokerSyntax.MatchString(string(broker)) {
		return false
	}
	dest, ok := get(d, "destination").(ast.String)
	if !ok || SyntaxError(string(broker), string(dest)) != nil {
		return false
	}
	for _, key := range []string{"name", "audience"} {
		switch get(d, key).(type) {
		case ast.Null, ast.String:
		default:
			return false
		}
	}
	for _, key := range []string{"operations", "scopes", "grant_types"} {
		if !stringsOrNull(get(d, key)) {
			return false
		}
	}
	switch details := get(d, "authorization_details").(type) {
	case ast.Null:
	case ast.Object:
		typ, ok := get(details, "type").(ast.String)
		if !ok || typ == "" || !stringsOrNull(get(details, "actions")) {
			return false
		}
	default:
		return false
	}
	return true
}

// SyntaxError says what is wrong with destination as a table entry of
// broker, nil when nothing is.
func SyntaxError(broker, destination string) error {
	switch {
	case destination == "":
		return fmt.Errorf("is empty")
	case len(destination) > MaxBytes:
		return fmt.Errorf("is longer than %d bytes", MaxBytes)
	case strings.Count(destination, ".") >= MaxTokens:
		return fmt.Errorf("has more than %d tokens", MaxTokens)
	case !printable.MatchString(destination):
		return fmt.Errorf("holds a space or a control character")
	}
	switch broker {
	case NATS:
		if !natsSyntax.MatchString(destination) {
			return fmt.Errorf(`is not a NATS subject: tokens are never empty, "*" and ">" are whole tokens, ">" only the last`)
		}
	case RabbitMQ:
		if !rabbitSyntax.MatchString(destination) {
			return fmt.Errorf(`is not a RabbitMQ name or topic pattern: "*" and "#" are whole words`)
		}
	default:
		if !genericSyntax.MatchString(destination) {
			return fmt.Errorf(`has a "*" before its last character`)
		}
	}
	return nil
}

// stringsOrNull: null, or an array of strings.
func stringsOrNull(v ast.Value) bool {
	switch v := v.(type) {
	case ast.Null:
		return true
	case *ast.Array:
		for i := range v.Len() {
			if _, ok := v.Elem(i).Value.(ast.String); !ok {
				return false
			}
		}
		return true
	}
	return false
}
