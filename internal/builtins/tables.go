package builtins

import (
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/open-policy-agent/opa/v1/ast"
)

// tables keeps the compiled form T of policy tables (data.pdp.routes,
// data.pdp.destinations) by the identity of the table's value: a policy
// version's data is read from its store as the same value on every
// evaluation, so the table is compiled on the version's first evaluation
// (the engine makes one when it activates a version) and then found by a
// pointer. The entry goes when the value is collected. A table that is a new
// value each time (a policy building it per request) is found by its
// content instead, among the last few compiled. Each kind of table has its
// own cache: two kinds may share a value (an empty array).
type tables[T any] struct {
	compile    func(*ast.Array) (T, error)
	byIdentity sync.Map // weak.Pointer[ast.Array] -> T
	byContent  struct {
		sync.Mutex
		recent []contentEntry[T]
	}
	compiles atomic.Int64
}

// recentTables bounds the tables found by content.
const recentTables = 4

type contentEntry[T any] struct {
	hash  int
	value *ast.Array
	table T
}

func (c *tables[T]) get(arr *ast.Array) (T, error) {
	key := weak.Make(arr)
	if t, ok := c.byIdentity.Load(key); ok {
		return t.(T), nil
	}
	h := arr.Hash()
	c.byContent.Lock()
	for _, e := range c.byContent.recent {
		if e.hash == h && e.value.Compare(arr) == 0 {
			c.byContent.Unlock()
			c.remember(key, arr, e.table)
			return e.table, nil
		}
	}
	c.byContent.Unlock()
	t, err := c.compile(arr)
	if err != nil {
		return t, err
	}
	c.compiles.Add(1)
	c.byContent.Lock()
	c.byContent.recent = append(c.byContent.recent, contentEntry[T]{hash: h, value: arr, table: t})
	if len(c.byContent.recent) > recentTables {
		c.byContent.recent = c.byContent.recent[1:]
	}
	c.byContent.Unlock()
	c.remember(key, arr, t)
	return t, nil
}

// remember keeps t for arr's identity until arr is collected.
func (c *tables[T]) remember(key weak.Pointer[ast.Array], arr *ast.Array, t T) {
	if _, loaded := c.byIdentity.LoadOrStore(key, t); !loaded {
		runtime.AddCleanup(arr, func(k weak.Pointer[ast.Array]) { c.byIdentity.Delete(k) }, key)
	}
}
