package main

import "github.com/tokenguard/pdp/internal/cpuset"

// pinning describes the pinning of a run for the table's header.
func pinning(server, generator cpuset.Set) string {
	if len(server) == 0 && len(generator) == 0 {
		return "not pinned"
	}
	return "servers on " + server.Where() + ", load generator on " + generator.Where()
}
