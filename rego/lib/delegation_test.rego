package tokenguard.lib.delegation_test

import data.tokenguard.lib.delegation

with_act(act) := {"token": {
	"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
	"claims": {"sub": "alice", "act": act},
}}

one := {"sub": "svc-b"}

two := {"sub": "svc-b", "act": {"sub": "svc-c"}}

three := {"sub": "svc-b", "act": {"sub": "svc-c", "act": {"sub": "admin"}}}

codes(rs) := {r.code | some r in rs}

test_depth_counts_nested_act_objects if {
	delegation.depth == 0 with input as {"token": {"present": true, "valid": true, "claims": {"sub": "alice"}}}
	delegation.depth == 1 with input as with_act(one)
	delegation.depth == 2 with input as with_act(two)
	delegation.depth == 3 with input as with_act(three)
	delegation.depth == 2 with input as with_act({"sub": "svc-b", "act": {"sub": "svc-c", "act": "admin"}})
	delegation.depth == 1 with input as with_act({"sub": "svc-b", "may_act": {"act": {"sub": "x"}}})
}

# The default allows act.act: the outermost actor and the one it acted for.
test_default_allows_one_nested_act if {
	count(delegation.reasons) == 0 with input as with_act(two) with data.pdp as {}
	codes(delegation.reasons) == {"delegation_too_deep"} with input as with_act(three) with data.pdp as {}
}

test_deny_a_chain_deeper_than_the_data_allows if {
	delegation.reasons == {{
		"code": "delegation_too_deep",
		"status": 403,
		"error": "insufficient_scope",
		"message": "the token's delegation chain is 2 deep, more than the 1 allowed",
	}} with input as with_act(two) with data.pdp as {"token_exchange": {"max_delegation_depth": 1}}
	count(delegation.reasons) == 0 with input as with_act(three) with data.pdp as {"token_exchange": {"max_delegation_depth": 3}}
}

test_a_malformed_depth_setting_is_a_policy_error if {
	every value in [0, -1, 1.5, "2", true] {
		codes(delegation.reasons) == {"policy_error"} with input as with_act(one) with data.pdp as {"token_exchange": {"max_delegation_depth": value}}
	}
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_depth_and_the_limit if {
	delegation.explain == {"depth": 3, "max_depth": 2} with input as with_act(three) with data.pdp as {}
}
