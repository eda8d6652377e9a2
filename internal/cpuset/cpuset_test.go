package cpuset

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Set
		err  string
	}{
		{"ok/empty is no pinning", "", nil, ""},
		{"ok/one CPU", "0", Set{0}, ""},
		{"ok/a range", "0-3", Set{0, 1, 2, 3}, ""},
		{"ok/numbers and ranges, repeats folded", "4-5, 0,2,5", Set{0, 2, 4, 5}, ""},
		{"ok/the highest CPU", "1023", Set{1023}, ""},
		{"fail/not a number", "a", nil, "not a CPU number"},
		{"fail/negative", "-1", nil, "not a CPU number"},
		{"fail/empty element", "0,,1", nil, "not a CPU number"},
		{"fail/range going down", "3-1", nil, "goes down"},
		{"fail/open range", "2-", nil, "not a CPU number"},
		{"fail/above the highest CPU", "1024", nil, "above 1023"},
		{"fail/a sign", "+1", nil, "not a CPU number"},
		{"fail/too long", strings.Repeat("1,", 200), nil, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSetString(t *testing.T) {
	for _, tt := range []struct {
		set         Set
		list, where string
	}{
		{nil, "", "any CPU"},
		{Set{1}, "1", "CPU 1"},
		{Set{0, 1, 2, 3, 6, 8, 9}, "0-3,6,8-9", "CPUs 0-3,6,8-9"},
	} {
		if s := tt.set.String(); s != tt.list {
			t.Errorf("String(%v) = %q, want %q", tt.set, s, tt.list)
		}
		if w := tt.set.Where(); w != tt.where {
			t.Errorf("Where(%v) = %q, want %q", tt.set, w, tt.where)
		}
	}
}

// FuzzParseCPUList: any input is refused or parsed into a sorted set
// within bounds whose String parses back to the same set.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "0-3", "0,2,4-5", "3-1", "", "1023", "a-b", "0-1023"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			return
		}
		if !slices.IsSorted(set) || len(slices.Compact(slices.Clone(set))) != len(set) {
			t.Fatalf("%q: set %v not sorted and unique", s, set)
		}
		for _, c := range set {
			if c < 0 || c > MaxCPU {
				t.Fatalf("%q: CPU %d out of bounds", s, c)
			}
		}
		again, err := Parse(set.String())
		if err != nil || !slices.Equal(again, set) {
			t.Fatalf("%q: %v does not round-trip (%v, %v)", s, set, again, err)
		}
	})
}
