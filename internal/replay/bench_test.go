package replay

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/builtins"
)

// BenchmarkReplay reads and re-evaluates one console line of a logged
// allow against the shipped policy with a tightened lifetime.
func BenchmarkReplay(b *testing.B) {
	builtins.SetStore(builtins.Empty)
	defer builtins.SetStore(nil)
	t := &testing.T{}
	eng, data := candidate(t, stricter)
	in := exampleInput(b)
	var log strings.Builder
	for i := range b.N {
		log.WriteString(jsonLine(eventJSON(fmt.Sprintf("%032x", i), in, true)))
		log.WriteByte('\n')
	}
	r := New(eng, data, true)
	b.ReportAllocs()
	b.ResetTimer()
	err := Read("bench", strings.NewReader(log.String()), Options{}, func(d *Decision) error {
		_, err := r.Replay(context.Background(), d)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if s := r.Summary(); s.NewDenials != b.N {
		b.Fatalf("new denials = %d, want %d", s.NewDenials, b.N)
	}
}
