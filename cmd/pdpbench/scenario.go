package main

import (
	"fmt"
	"strings"
)

// scenario is one workload of the benchmark.
type scenario struct {
	// Name is the flag value (warm, cold, routes1k, ...).
	Name string
	// Title names it in the table.
	Title string
	// Fresh: every request carries a token never presented before.
	Fresh bool
	// DPoP: DPoP-bound tokens with a fresh proof per request.
	DPoP bool
	// Preload: the state file holds revocations and fingerprints before the
	// server starts.
	Preload bool
	// CompareWith names the OPA scenario the ratio is taken against when
	// stock OPA cannot run this one.
	CompareWith string
	// StockOPA: stock OPA can run it (it has no DPoP and no state).
	StockOPA bool
	// Routes: tokenguard's data holds this many more routes before the
	// one the requests match (stock OPA keeps its policy).
	Routes int
	// Herd: no throughput search; a cold server is offered the warm
	// maximum rate from the moment it is ready (see herd.go).
	Herd bool
}

// scenarios are the workloads of issue #7, in the order they run.
var scenarios = []scenario{
	{Name: "warm", Title: "warm bearer", StockOPA: true},
	{Name: "cold", Title: "cold bearer", Fresh: true, StockOPA: true},
	{Name: "routes1k", Title: "cold bearer, 1,000 routes", Fresh: true, StockOPA: true, Routes: 1000},
	{Name: "routes10k", Title: "cold bearer, 10,000 routes", Fresh: true, StockOPA: true, Routes: 10000},
	{Name: "dpop", Title: "DPoP", DPoP: true, CompareWith: "warm"},
	{Name: "revoked", Title: "revoked-heavy store", Preload: true, CompareWith: "warm"},
	{Name: "herd", Title: "herd (cold replica at the warm maximum rate)", Herd: true},
}

// selectScenarios returns the named scenarios ("all" for every one) in
// the benchmark's order.
func selectScenarios(list string) ([]scenario, error) {
	want := map[string]bool{}
	for n := range strings.SplitSeq(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []scenario
	for _, sc := range scenarios {
		if want["all"] || want[sc.Name] {
			out = append(out, sc)
			delete(want, sc.Name)
		}
	}
	delete(want, "all")
	for n := range want {
		return nil, fmt.Errorf("unknown scenario %q (known: warm, cold, routes1k, routes10k, dpop, revoked, herd, all)", n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario selected")
	}
	return out, nil
}
