# Guardrail: delegation (RFC 8693 token exchange). Only the top-level claims
# and the outermost act count (checklist 3); a nested act is history. This
# guardrail bounds how long that history may be: the number of act levels
# ({"act": {...}} is 1, act.act is 2) may not exceed
# data.pdp.token_exchange.max_delegation_depth (default 2: the outermost
# actor and the one it acted for; an integer from 1 up).
#
# Reason (mode "delegation", see lib/mode.rego):
#   delegation_too_deep  403 insufficient_scope
package tokenguard.lib.delegation

import data.tokenguard.lib.config
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {"delegation_too_deep": "delegation"}

max_depth := config.get_int(["token_exchange", "max_delegation_depth"], 2, 1, 1000)

# depth: how many act objects are nested from the top: the paths act,
# act.act, act.act.act... that lead to an object.
depth := count([path |
	walk(token.claims, [path, value])
	count(path) > 0
	every key in path {
		key == "act"
	}
	is_object(value)
])

reasons contains reason.new("delegation_too_deep", 403, msg) if {
	token.ok
	depth > max_depth
	msg := sprintf("the token's delegation chain is %d deep, more than the %d allowed", [depth, max_depth])
}

reasons contains reason.new("policy_error", 500, msg) if {
	token.ok
	not max_depth
	msg := "data.pdp.token_exchange.max_delegation_depth is not a positive integer"
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["depth"] := depth

explain["max_depth"] := max_depth
