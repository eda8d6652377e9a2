package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestVCacheBehavesAsOPAs checks the pooled virtual cache against OPA's
// contract: values and "undefined" per reference, frames that a Pop
// discards, references copied (OPA reuses the slice it puts), and nothing
// left over for the next evaluation.
func TestVCacheBehavesAsOPAs(t *testing.T) {
	ref := ast.MustParseRef("data.a.b")
	other := ast.MustParseRef("data.a.c")
	one := ast.IntNumberTerm(1)

	c := getVCache()
	if v, undef := c.Get(ref); v != nil || undef {
		t.Fatalf("empty cache: %v %v", v, undef)
	}
	buf := ref.Copy()
	c.Put(buf, one)
	buf[2] = ast.StringTerm("z") // OPA goes on using its buffer
	if v, _ := c.Get(ref); v != one {
		t.Fatalf("value = %v, want 1", v)
	}
	c.Put(other, nil)
	if v, undef := c.Get(other); v != nil || !undef {
		t.Fatalf("undefined: %v %v", v, undef)
	}
	if keys := c.Keys(); len(keys) != 1 || !keys[0].Equal(ref) {
		t.Fatalf("keys = %v", keys)
	}

	c.Push() // a `with`: nothing of the outer frame is seen
	if v, _ := c.Get(ref); v != nil {
		t.Fatalf("pushed frame sees %v", v)
	}
	c.Put(ref, ast.IntNumberTerm(2))
	c.Pop()
	if v, _ := c.Get(ref); v != one {
		t.Fatalf("after pop = %v, want 1", v)
	}
	c.Push()
	if v, _ := c.Get(ref); v != nil {
		t.Fatalf("frame pushed again sees %v", v)
	}
	c.Pop()

	putVCache(c)
	if v, undef := c.Get(ref); v != nil || undef || len(c.refs) != 0 {
		t.Fatalf("returned cache keeps %v %v %d", v, undef, len(c.refs))
	}
}
