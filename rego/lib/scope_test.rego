package tokenguard.lib.scope_test

import data.tokenguard.lib.route_reference
import data.tokenguard.lib.scope

# request: a user token with claims on a route that needs `needs`.
request(claims) := {
	"environment": "prod",
	"request": {"method": "GET", "host": "api.example.com", "path": "/x"},
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
		"claims": object.union({"sub": "alice", "client_id": "web", "gty": "authorization_code"}, claims),
	},
}

client(claims) := request(object.union({"sub": "billing", "client_id": "billing", "gty": "client_credentials"}, claims))

policy(needs, env) := {
	"routes": [{"path": "/x", "scopes": needs}],
	"environments": {"prod": env},
}

prod := {
	"roles": {"support": ["accounts:read"], "admin": ["accounts:read", "accounts:write"]},
	"frozen_scopes": ["accounts:close"],
}

codes(rs) := {r.code | some r in rs}

test_all_required_scopes_present_passes if {
	count(scope.reasons) == 0 with input as request({"scope": "accounts:read accounts:write", "roles": ["admin"]}) with data.pdp as policy(["accounts:read", "accounts:write"], prod) with pdp.route as route_reference.route
	count(scope.reasons) == 0 with input as request({"scope": "x"}) with data.pdp as policy([], prod) with pdp.route as route_reference.route
}

test_deny_a_scope_never_granted_is_scope_insufficient_naming_the_route_scopes if {
	scope.reasons == {{
		"code": "scope_insufficient",
		"status": 403,
		"error": "insufficient_scope",
		"message": "the token lacks the scope accounts:write",
		"scope": "accounts:read accounts:write",
	}} with input as request({"scope": "accounts:read", "roles": ["admin"]}) with data.pdp as policy(["accounts:read", "accounts:write"], prod) with pdp.route as route_reference.route
}

test_deny_a_scope_the_roles_do_not_allow_is_scope_restricted if {
	scope.reasons == {{
		"code": "scope_restricted",
		"status": 403,
		"error": "insufficient_scope",
		"message": "the scope accounts:write is not available to this caller in environment \"prod\"",
	}} with input as request({"scope": "accounts:read accounts:write", "roles": ["support"]}) with data.pdp as policy(["accounts:write"], prod) with pdp.route as route_reference.route
}

test_deny_a_frozen_scope_is_scope_restricted_even_for_admins if {
	codes(scope.reasons) == {"scope_restricted"} with input as request({"scope": "accounts:close", "roles": ["admin"]}) with data.pdp as policy(["accounts:close"], object.union(prod, {"roles": {"admin": ["accounts:close"]}})) with pdp.route as route_reference.route
}

test_insufficient_and_restricted_together if {
	inp := request({"scope": "accounts:write", "roles": ["support"]})
	codes(scope.reasons) == {"scope_insufficient", "scope_restricted"} with input as inp with data.pdp as policy(["accounts:read", "accounts:write"], prod) with pdp.route as route_reference.route
}

test_effective_scopes_keep_the_token_order_without_repeats if {
	inp := request({"scope": "openid accounts:write accounts:read accounts:close accounts:read", "roles": "admin"})
	scope.effective == ["accounts:write", "accounts:read"] with input as inp with data.pdp as policy([], prod) with pdp.route as route_reference.route
}

test_roles_and_groups_claims_are_both_read_as_arrays_or_strings if {
	pdp_data := policy([], prod)
	scope.effective == ["accounts:read"] with input as request({"scope": "accounts:read accounts:write", "roles": "support"}) with data.pdp as pdp_data with pdp.route as route_reference.route
	scope.effective == ["accounts:read", "accounts:write"] with input as request({"scope": "accounts:read accounts:write", "groups": ["ops", "admin"]}) with data.pdp as pdp_data with pdp.route as route_reference.route
	scope.effective == ["accounts:read", "accounts:write"] with input as request({"scope": "accounts:read accounts:write", "roles": ["support"], "groups": "admin"}) with data.pdp as pdp_data with pdp.route as route_reference.route
	scope.effective == [] with input as request({"scope": "accounts:read", "roles": [7, {"admin": true}]}) with data.pdp as pdp_data with pdp.route as route_reference.route
}

# A token with neither claim gets the environment's default_roles; without
# default_roles it keeps no scope where roles are configured.
test_tokens_without_roles_claims_get_the_default_roles if {
	inp := request({"scope": "accounts:read accounts:write"})
	scope.effective == [] with input as inp with data.pdp as policy([], prod) with pdp.route as route_reference.route
	scope.effective == ["accounts:read"] with input as inp with data.pdp as policy([], object.union(prod, {"default_roles": ["support"]})) with pdp.route as route_reference.route
	scope.effective == [] with input as request({"scope": "accounts:read", "roles": []}) with data.pdp as policy([], object.union(prod, {"default_roles": ["support"]})) with pdp.route as route_reference.route
}

test_an_environment_without_roles_does_not_restrict_by_role if {
	inp := request({"scope": "accounts:read accounts:write accounts:close"})
	scope.effective == ["accounts:read", "accounts:write"] with input as inp with data.pdp as policy([], {"frozen_scopes": ["accounts:close"]}) with pdp.route as route_reference.route
	scope.effective == ["accounts:read", "accounts:write", "accounts:close"] with input as inp with data.pdp as policy([], {}) with pdp.route as route_reference.route
	scope.effective == ["accounts:read", "accounts:write", "accounts:close"] with input as object.union(inp, {"environment": "staging"}) with data.pdp as policy([], prod) with pdp.route as route_reference.route
	scope.effective == ["accounts:read", "accounts:write", "accounts:close"] with input as inp with data.pdp as {} with pdp.route as route_reference.route
}

test_a_malformed_role_setting_allows_nothing if {
	inp := request({"scope": "accounts:read", "roles": ["support"]})
	scope.effective == [] with input as inp with data.pdp as policy([], {"roles": {"support": "accounts:read"}}) with pdp.route as route_reference.route
	scope.effective == [] with input as inp with data.pdp as policy([], {"roles": ["support"]}) with pdp.route as route_reference.route
}

# J11: client tokens never have roles read; client_scopes restricts them.
test_client_tokens_are_restricted_by_client_scopes_never_by_roles if {
	env := object.union(prod, {"client_scopes": {"billing": ["accounts:read"]}})
	inp := client({"scope": "accounts:read accounts:write accounts:close", "roles": ["admin"]})
	scope.effective == ["accounts:read"] with input as inp with data.pdp as policy([], env) with pdp.route as route_reference.route
	codes(scope.reasons) == {"scope_restricted"} with input as inp with data.pdp as policy(["accounts:write"], env) with pdp.route as route_reference.route
	scope.effective == [] with input as client({"scope": "accounts:read", "sub": "other", "client_id": "other"}) with data.pdp as policy([], env) with pdp.route as route_reference.route
}

test_client_tokens_without_client_scopes_only_lose_frozen_scopes if {
	inp := client({"scope": "accounts:read accounts:write accounts:close", "roles": []})
	scope.effective == ["accounts:read", "accounts:write"] with input as inp with data.pdp as policy([], prod) with pdp.route as route_reference.route
}

test_no_scope_reasons_for_a_token_that_failed_verification if {
	inp := object.union(request({"scope": "x"}), {"token": {"valid": false}})
	count(scope.reasons) == 0 with input as inp with data.pdp as policy(["accounts:read"], prod) with pdp.route as route_reference.route
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_required_granted_and_effective_scopes if {
	inp := request({"scope": "accounts:read accounts:write accounts:close", "roles": ["support"]})
	scope.explain == {
		"required": ["accounts:write"],
		"granted": ["accounts:close", "accounts:read", "accounts:write"],
		"effective": ["accounts:read"],
		"frozen": ["accounts:close"],
		"restricted": true,
		"environment": "prod",
	} with input as inp with data.pdp as policy(["accounts:write"], prod) with pdp.route as route_reference.route
}
