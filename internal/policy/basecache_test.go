package policy

import (
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestBaseCacheKeepsAtMostItsBound checks that the version-wide base cache
// returns what was put under the same reference only, copies the reference
// (OPA reuses its buffers), and stops growing at its bound, so references
// built from input cannot fill memory.
func TestBaseCacheKeepsAtMostItsBound(t *testing.T) {
	c := newBaseCache()
	ref := ast.MustParseRef("data.pdp.routes")
	buf := ref.Copy()
	c.Put(buf, ast.String("x"))
	buf[2] = ast.StringTerm("clients")
	if v := c.Get(ref); v == nil || v.Compare(ast.String("x")) != 0 {
		t.Fatalf("get = %v", v)
	}
	if v := c.Get(ast.MustParseRef("data.pdp.clients")); v != nil {
		t.Fatalf("another reference gives %v", v)
	}
	for i := range 2 * baseCacheEntries {
		c.Put(ast.MustParseRef(fmt.Sprintf("data.pdp.x[%q]", fmt.Sprint(i))), ast.Boolean(true))
	}
	if n := len(*c.docs.Load()); n > baseCacheEntries || c.n != baseCacheEntries {
		t.Fatalf("%d documents kept (n=%d), bound %d", n, c.n, baseCacheEntries)
	}
}
