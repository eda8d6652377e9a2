package replay

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTextGroups is how many groups of each kind the text summary lists,
// the largest first.
const maxTextGroups = 20

// WriteText writes the summary for a reader: the counts, then the changed
// decisions by reason code, client and route, each group with its example
// decision ids.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "decisions read     %d\n", s.Decisions)
	fmt.Fprintf(&b, "re-evaluated       %d\n", s.Evaluated)
	fmt.Fprintf(&b, "unchanged          %d\n", s.Unchanged)
	fmt.Fprintf(&b, "new denials        %d%s\n", s.NewDenials, examplesText(s.Examples.NewDenials))
	fmt.Fprintf(&b, "new allows         %d%s\n", s.NewAllows, examplesText(s.Examples.NewAllows))
	fmt.Fprintf(&b, "changed reasons    %d%s\n", s.ChangedReasons, examplesText(s.Examples.ChangedReasons))
	for _, g := range []struct {
		title    string
		groups   map[string]*Counts
		examples map[string][]string
	}{
		{"by reason", s.ByReason, s.Examples.ByReason},
		{"by client", s.ByClient, s.Examples.ByClient},
		{"by route", s.ByRoute, s.Examples.ByRoute},
	} {
		if len(g.groups) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (new denials / new allows / changed reasons):\n", g.title)
		keys := slices.SortedFunc(maps.Keys(g.groups), func(a, b string) int {
			return cmp.Or(cmp.Compare(g.groups[b].Total(), g.groups[a].Total()), cmp.Compare(a, b))
		})
		for i, k := range keys {
			if i == maxTextGroups {
				fmt.Fprintf(&b, "  ... and %d more\n", len(keys)-i)
				break
			}
			c := g.groups[k]
			fmt.Fprintf(&b, "  %-32s %d / %d / %d%s\n", printable(k), c.NewDenials, c.NewAllows, c.ChangedReasons, examplesText(g.examples[k]))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func examplesText(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = printable(id)
	}
	return "  e.g. " + strings.Join(out, " ")
}

// printable is s as it is when it holds only printable characters, else
// quoted: client ids and decision ids come from logs, and must not write
// control sequences to a terminal.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}
