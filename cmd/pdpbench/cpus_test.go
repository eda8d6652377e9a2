package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want cpuSet
		err  string
	}{
		{"ok/empty is no pinning", "", nil, ""},
		{"ok/one CPU", "0", cpuSet{0}, ""},
		{"ok/a range", "0-3", cpuSet{0, 1, 2, 3}, ""},
		{"ok/numbers and ranges, repeats folded", "4-5, 0,2,5", cpuSet{0, 2, 4, 5}, ""},
		{"ok/the highest CPU", "1023", cpuSet{1023}, ""},
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
			got, err := parseCPUList(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("parseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCPUSetString(t *testing.T) {
	if s := (cpuSet{0, 1, 2, 3, 6, 8, 9}).String(); s != "0-3,6,8-9" {
		t.Errorf("String = %q", s)
	}
	if p := pinning(cpuSet{0}, cpuSet{1}); p != "servers on CPU 0, load generator on CPU 1" {
		t.Errorf("pinning = %q", p)
	}
	if p := pinning(nil, nil); p != "not pinned" {
		t.Errorf("pinning = %q", p)
	}
}

// FuzzParseCPUList: any input is refused or parsed into a sorted set
// within bounds whose String parses back to the same set.
func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0", "0-3", "0,2,4-5", "3-1", "", "1023", "a-b", "0-1023"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := parseCPUList(s)
		if err != nil {
			return
		}
		if !slices.IsSorted(set) || len(slices.Compact(slices.Clone(set))) != len(set) {
			t.Fatalf("%q: set %v not sorted and unique", s, set)
		}
		for _, c := range set {
			if c < 0 || c > maxCPU {
				t.Fatalf("%q: CPU %d out of bounds", s, c)
			}
		}
		again, err := parseCPUList(set.String())
		if err != nil || !slices.Equal(again, set) {
			t.Fatalf("%q: %v does not round-trip (%v, %v)", s, set, again, err)
		}
	})
}

func TestBenchPolicyPutsExtraRoutesBeforeTheShippedOnes(t *testing.T) {
	dst := t.TempDir()
	if _, err := benchPolicy("../../rego", dst, 1000); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dst, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		PDP struct {
			Routes []map[string]any `json:"routes"`
		} `json:"pdp"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	routes := data.PDP.Routes
	if len(routes) < 1001 || routes[len(routes)-1]["name"] != "read accounts" && routes[1000]["name"] != "read accounts" {
		t.Fatalf("%d routes, the shipped ones not after the extra ones", len(routes))
	}
	kinds := map[string]bool{}
	for _, r := range routes[:1000] {
		switch {
		case r["methods"] != nil && len(r["methods"].([]any)) == 2:
			kinds["method"] = true
		case r["host"] != "api.example.com":
			kinds["host"] = true
		case strings.HasSuffix(r["path"].(string), "/**"):
			kinds["prefix"] = true
		case strings.Contains(r["path"].(string), "/*/"):
			kinds["glob"] = true
		default:
			kinds["exact"] = true
		}
	}
	if len(kinds) != 5 {
		t.Errorf("route kinds = %v, want exact, glob, prefix, host and method routes", kinds)
	}
}
