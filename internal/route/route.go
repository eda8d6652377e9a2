// Package route compiles a policy's route table (data.pdp.routes) into a
// matcher that finds the route a request is for without scanning the table:
// a tree on the host and the path's segments, with each route's methods and
// its glob kept beside it. It gives exactly the answer of the route matching
// written in Rego (rego/lib/route_reference_test.rego): the first route of
// the table that matches applies, a table with a malformed route matches
// nothing, and the same globs, host wildcards, method lists and path checks.
//
// A table is compiled once per policy version (see the pdp.route built-in);
// a look-up then costs what the request's path depth and the routes that
// share its prefix cost, not what the table's size does.
package route

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/gobwas/glob"
	"github.com/open-policy-agent/opa/v1/ast"
)

// pathSyntax is what a route's path may hold: only "*" and "**" are
// wildcards, other glob syntax would match more than the author meant.
var pathSyntax = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*$`)

// starSegment finds a "*" that is a whole segment; it becomes "?*" so that
// it needs at least one character (as pattern in the Rego reference).
var starSegment = regexp.MustCompile(`(^|/)\*(/|$)`)

// Table is a compiled route table. It is immutable and safe to share.
type Table struct {
	// broken: indexes of the routes that are not well-formed, ascending.
	broken []int
	routes []entry
	// exact: the routes of a host, by its lower-case name; wild: the routes
	// of a "*.suffix" host, by its lower-case ".suffix"; any: the routes for
	// every host.
	exact map[string]*node
	wild  map[string]*node
	any   *node
}

type entry struct {
	anyMethod bool
	methods   []string // upper case
	// pattern: the glob of a route whose path the tree does not decide
	// (node.rest), compiled on the first request that needs it: compiling
	// ten thousand globs would take seconds at activation.
	pattern string
	once    sync.Once
	glob    *glob.Pattern
	err     error
}

// globEdge is a segment with a "*" within other characters ("a*", "*.txt"):
// a glob that cannot reach past the segment, compiled on first use.
type globEdge struct {
	pattern string
	once    sync.Once
	glob    *glob.Pattern
	err     error
	next    *node
}

func (g *globEdge) match(seg string) (bool, error) {
	g.once.Do(func() {
		g.glob, g.err = glob.Compile(g.pattern, '/')
		if g.err != nil {
			g.err = fmt.Errorf("route path segment glob %q: %w", g.pattern, g.err)
		}
	})
	if g.err != nil {
		return false, g.err
	}
	return g.glob.Match(seg), nil
}

// compiled returns e's glob.
func (e *entry) compiled() (*glob.Pattern, error) {
	e.once.Do(func() {
		e.glob, e.err = glob.Compile(e.pattern, '/')
		if e.err != nil {
			e.err = fmt.Errorf("route path glob %q: %w", e.pattern, e.err)
		}
	})
	return e.glob, e.err
}

// node is a place in the path tree: the routes whose path is made of the
// segments that lead here.
type node struct {
	lit  map[string]*node
	star *node // a "*" segment: one non-empty segment
	// globs: segments with a "*" within other characters (and no "**"),
	// which match within the segment: one edge per distinct segment.
	globs   []*globEdge
	globIdx map[string]int
	// end: routes whose whole path leads here; prefix: routes whose path
	// goes on with a last "**" segment (any depth under here, none
	// included); rest: routes whose path goes on otherwise with a segment
	// holding "**", which their glob decides on the whole request path.
	// Each ascending.
	end    []int
	prefix []int
	rest   []int
}

// Compile compiles the route table routes (the value of data.pdp.routes
// once it is an array). A route that is not well-formed does not stop it: it
// is listed by Broken, and the table matches nothing. The error is for a
// glob the matcher cannot compile (a route that passed the path syntax check
// never has one).
func Compile(routes *ast.Array) (*Table, error) {
	t := &Table{exact: map[string]*node{}, wild: map[string]*node{}, any: &node{}}
	n := routes.Len()
	t.routes = make([]entry, n)
	for i := range n {
		r, ok := routes.Elem(i).Value.(ast.Object)
		if !ok || !wellFormed(r) {
			t.broken = append(t.broken, i)
			continue
		}
		if len(t.broken) > 0 {
			continue // the table matches nothing: only its broken routes count
		}
		if err := t.add(i, r); err != nil {
			return nil, fmt.Errorf("route %d: %w", i, err)
		}
	}
	if len(t.broken) > 0 {
		t.routes, t.exact, t.wild, t.any = nil, nil, nil, &node{}
	}
	return t, nil
}

// Broken returns the indexes of the table's routes that are not well-formed,
// ascending; none for a well-formed table.
func (t *Table) Broken() []int { return t.broken }

// Len is the number of routes in the table.
func (t *Table) Len() int { return len(t.routes) }

func (t *Table) add(i int, r ast.Object) error {
	path := string(r.Get(ast.InternedTerm("path")).Value.(ast.String))
	e := &t.routes[i]
	switch m := get(r, "methods").(type) {
	case ast.Null, ast.String: // absent, null or "*" (well-formed)
		e.anyMethod = true
	case *ast.Array:
		for j := range m.Len() {
			name := strings.ToUpper(string(m.Elem(j).Value.(ast.String)))
			if name == "*" {
				e.anyMethod = true
			}
			e.methods = append(e.methods, name)
		}
	}

	root := t.any
	if h, ok := get(r, "host").(ast.String); ok && h != "*" {
		host := string(h)
		tree, key := t.exact, strings.ToLower(trimRootDot(host))
		if strings.HasPrefix(host, "*.") {
			// "*.example.com" also matches the host "*.example.com" by name:
			// that host's label is "*", which the wildcard matches anyway.
			tree, key = t.wild, strings.ToLower(trimRootDot(host[1:]))
		}
		if root = tree[key]; root == nil {
			root = &node{}
			tree[key] = root
		}
	}
	at := root
	segs := strings.Split(path, "/")[1:]
	for k, s := range segs {
		switch {
		case s == "**" && k == len(segs)-1:
			at.prefix = append(at.prefix, i)
			return nil
		case s == "*":
			if at.star == nil {
				at.star = &node{}
			}
			at = at.star
		case strings.Contains(s, "*") && !strings.Contains(s, "**"):
			k, ok := at.globIdx[s]
			if !ok {
				if at.globIdx == nil {
					at.globIdx = map[string]int{}
				}
				k = len(at.globs)
				at.globIdx[s] = k
				at.globs = append(at.globs, &globEdge{pattern: s, next: &node{}})
			}
			at = at.globs[k].next
		case strings.Contains(s, "*"):
			e.pattern = pattern(path)
			at.rest = append(at.rest, i)
			return nil
		default:
			if at.lit == nil {
				at.lit = map[string]*node{}
			}
			next := at.lit[s]
			if next == nil {
				next = &node{}
				at.lit[s] = next
			}
			at = next
		}

	}
	at.end = append(at.end, i)
	return nil
}

// pattern is the route path as the glob it is matched with: a "*" segment
// needs at least one character, so that /v1/accounts/* never matches
// /v1/accounts/ (often the list endpoint); "**" matches any depth, none
// included. It takes two replacements: in "/*/*" the first one's match takes
// the "/" between them.
func pattern(path string) string {
	return starSegment.ReplaceAllString(starSegment.ReplaceAllString(path, "$1?*$2"), "$1?*$2")
}

// Match returns the index of the first route of the table that matches the
// request, and false when none does or the table has broken routes. The
// method is compared in upper and the host in lower case, and a route that
// lists GET matches HEAD too (servers answer HEAD with their GET handler); a path with a "."
// or ".." segment never matches (request paths are normalised before). The
// error is for a route's glob that does not compile (none that passed the
// path syntax check).
func (t *Table) Match(method, host, path string) (int, bool, error) {
	if len(t.broken) > 0 || len(t.routes) == 0 || !strings.HasPrefix(path, "/") || dotSegment(path) {
		return 0, false, nil // every route's path starts with "/"
	}
	method, host = strings.ToUpper(method), strings.ToLower(host)
	m := matcher{t: t, method: method, path: path, best: len(t.routes)}
	segs := splitter{rest: path[1:]}
	if root := t.exact[host]; root != nil {
		m.walk(root, segs)
	}
	if dot := strings.IndexByte(host, '.'); dot > 0 {
		if root := t.wild[host[dot:]]; root != nil {
			m.walk(root, segs)
		}
	}
	m.walk(t.any, segs)
	if m.err != nil {
		return 0, false, m.err
	}
	if m.best == len(t.routes) {
		return 0, false, nil
	}
	return m.best, true, nil
}

// splitter walks a path's segments without allocating: rest is what follows
// the "/" before the next segment, done once the last segment is taken.
type splitter struct {
	rest string
	done bool
}

func (s splitter) next() (string, splitter) {
	if i := strings.IndexByte(s.rest, '/'); i >= 0 {
		return s.rest[:i], splitter{rest: s.rest[i+1:]}
	}
	return s.rest, splitter{done: true}
}

type matcher struct {
	t      *Table
	method string
	path   string
	best   int
	err    error
}

func (m *matcher) walk(n *node, segs splitter) {
	m.first(n.rest, true)
	if segs.done {
		m.first(n.end, false)
		return
	}
	m.first(n.prefix, false)
	seg, more := segs.next()
	if next := n.lit[seg]; next != nil {
		m.walk(next, more)
	}
	if n.star != nil && seg != "" {
		m.walk(n.star, more)
	}
	for _, g := range n.globs {
		ok, err := g.match(seg)
		if err != nil {
			if m.err == nil {
				m.err = err
			}
			return
		}
		if ok {
			m.walk(g.next, more)
		}
	}
}

// first takes the first route of candidates (ascending) that matches, if it
// comes before the best found so far. The tree decides the path of end and
// prefix candidates; a rest candidate's glob decides it (byGlob).
func (m *matcher) first(candidates []int, byGlob bool) {
	for _, i := range candidates {
		if i >= m.best {
			return
		}
		e := &m.t.routes[i]
		if !e.anyMethod && !slices.Contains(e.methods, m.method) &&
			(m.method != "HEAD" || !slices.Contains(e.methods, "GET")) {
			continue // HEAD is served by GET handlers: a GET route guards it
		}
		if byGlob {
			g, err := e.compiled()
			if err != nil {
				if m.err == nil {
					m.err = err
				}
				return
			}
			if !g.Match(m.path) {
				continue
			}
		}
		m.best = i
		return
	}
}

// trimRootDot drops a host's trailing dot (the DNS root's: request hosts
// lose theirs when normalised), but never makes "." empty.
func trimRootDot(h string) string {
	if len(h) > 1 && strings.HasSuffix(h, ".") {
		return h[:len(h)-1]
	}
	return h
}

// dotSegment reports whether path has a "." or ".." segment.
func dotSegment(path string) bool {
	for s := range strings.SplitSeq(path, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// get returns the value of key in o, null when it is absent.
func get(o ast.Object, key string) ast.Value {
	if v := o.Get(ast.InternedTerm(key)); v != nil {
		return v.Value
	}
	return ast.Null{}
}

// wellFormed reports whether r is a route the matcher can rely on, as
// well_formed in the Rego reference.
func wellFormed(r ast.Object) bool {
	p := r.Get(ast.InternedTerm("path"))
	if p == nil {
		return false
	}
	path, ok := p.Value.(ast.String)
	if !ok || !pathSyntax.MatchString(string(path)) {
		return false
	}
	for _, key := range []string{"host", "audience"} {
		switch get(r, key).(type) {
		case ast.Null, ast.String:
		default:
			return false
		}
	}
	if m := get(r, "methods"); m != ast.String("*") && !stringsOrNull(m) {
		return false
	}
	if !stringsOrNull(get(r, "scopes")) || !stringsOrNull(get(r, "grant_types")) {
		return false
	}
	switch d := get(r, "authorization_details").(type) {
	case ast.Null:
	case ast.Object:
		typ, ok := get(d, "type").(ast.String)
		if !ok || typ == "" || !stringsOrNull(get(d, "actions")) {
			return false
		}
	default:
		return false
	}
	switch get(r, "path_parameters").(type) {
	case ast.Null, ast.Boolean:
	default:
		return false
	}
	return true
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
