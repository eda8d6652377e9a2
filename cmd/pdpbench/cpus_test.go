package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/cpuset"
)

func TestPinning(t *testing.T) {
	if p := pinning(cpuset.Set{0}, cpuset.Set{1}); p != "servers on CPU 0, load generator on CPU 1" {
		t.Errorf("pinning = %q", p)
	}
	if p := pinning(cpuset.Set{0, 1}, nil); p != "servers on CPUs 0-1, load generator on any CPU" {
		t.Errorf("pinning = %q", p)
	}
	if p := pinning(nil, nil); p != "not pinned" {
		t.Errorf("pinning = %q", p)
	}
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
