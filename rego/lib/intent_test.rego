package tokenguard.lib.intent_test

import data.tokenguard.lib.intent
import data.tokenguard.lib.route_reference

request(method, path, details) := {
	"request": {"method": method, "host": "api.example.com", "path": path},
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
		"claims": {"sub": "alice", "authorization_details": details},
	},
}

routes := {"routes": [
	{
		"path": "/v1/accounts/*", "methods": ["GET"], "audience": "https://api.example.com",
		"authorization_details": {"type": "account_information", "actions": ["read"]},
	},
	{"path": "/v1/payments", "methods": ["POST"], "authorization_details": {"type": "payment_initiation"}},
	{"path": "/v1/status", "methods": ["GET"]},
]}

codes(rs) := {r.code | some r in rs}

reasons(method, path, details) := rs if {
	rs := intent.reasons with input as request(method, path, details) with data.pdp as routes with pdp.route as route_reference.route
}

test_an_entry_of_the_route_type_with_its_actions_passes if {
	count(reasons("GET", "/v1/accounts/42", [{"type": "account_information", "actions": ["list", "read"]}])) == 0
	count(reasons("GET", "/v1/accounts/42", [
		{"type": "payment_initiation", "actions": ["initiate"]},
		{"type": "account_information", "actions": ["read"], "locations": ["https://api.example.com"]},
	])) == 0
}

test_a_route_type_without_actions_needs_only_the_type if {
	count(reasons("POST", "/v1/payments", [{"type": "payment_initiation"}])) == 0
}

test_tokens_without_details_are_left_to_their_scopes if {
	count(intent.reasons) == 0 with input as {"request": {"method": "GET", "path": "/v1/accounts/42"}, "token": {"present": true, "valid": true, "scheme": "bearer", "claims": {"sub": "alice"}}} with data.pdp as routes with pdp.route as route_reference.route
	count(reasons("GET", "/v1/accounts/42", [])) == 0
}

test_a_route_without_details_is_left_to_the_scopes if {
	count(reasons("GET", "/v1/status", [{"type": "account_information", "actions": ["read"]}])) == 0
}

test_deny_an_unknown_type if {
	reasons("GET", "/v1/accounts/42", [
		{"type": "account_information", "actions": ["read"]},
		{"type": "crypto_withdrawal", "actions": ["all"]},
	]) == {{
		"code": "grant_intent_mismatch",
		"status": 403,
		"error": "insufficient_scope",
		"message": "authorization_details type \"crypto_withdrawal\" is not known",
	}}
	codes(reasons("GET", "/v1/status", [{"type": "crypto_withdrawal"}])) == {"grant_intent_mismatch"}
}

test_unknown_types_are_denied_without_a_matching_route_too if {
	inp := request("GET", "/nowhere", [{"type": "crypto_withdrawal"}])
	codes(intent.reasons) == {"grant_intent_mismatch"} with input as inp with data.pdp as object.union(routes, {"unknown_routes": "allow"}) with pdp.route as route_reference.route
}

test_deny_details_that_do_not_cover_the_route if {
	reasons("GET", "/v1/accounts/42", [{"type": "account_information", "actions": ["list"]}]) == {{
		"code": "grant_intent_mismatch",
		"status": 403,
		"error": "insufficient_scope",
		"message": "no authorization_details entry of type \"account_information\" allows read",
	}}
	codes(reasons("GET", "/v1/accounts/42", [{"type": "payment_initiation", "actions": ["read"]}])) == {"grant_intent_mismatch"}
	codes(reasons("GET", "/v1/accounts/42", [{"type": "account_information"}])) == {"grant_intent_mismatch"}
	codes(reasons("GET", "/v1/accounts/42", [{"type": "account_information", "actions": "read"}])) == {"grant_intent_mismatch"}
}

# Details never add to one another: each entry must cover the route alone.
test_deny_actions_spread_over_entries if {
	pdp_data := {"routes": [{"path": "/x", "authorization_details": {"type": "t", "actions": ["read", "write"]}}]}
	inp := request("GET", "/x", [{"type": "t", "actions": ["read"]}, {"type": "t", "actions": ["write"]}])
	codes(intent.reasons) == {"grant_intent_mismatch"} with input as inp with data.pdp as pdp_data with pdp.route as route_reference.route
}

test_deny_locations_without_the_route_audience if {
	codes(reasons("GET", "/v1/accounts/42", [{"type": "account_information", "actions": ["read"], "locations": ["https://other.example.com"]}])) == {"grant_intent_mismatch"}
	codes(reasons("GET", "/v1/accounts/42", [{"type": "account_information", "actions": ["read"], "locations": "https://api.example.com"}])) == {"grant_intent_mismatch"}
	codes(reasons("POST", "/v1/payments", [{"type": "payment_initiation", "locations": ["https://api.example.com"]}])) == {"grant_intent_mismatch"}
}

test_deny_malformed_details_as_token_claims_invalid if {
	every details in ["account_information", {"type": "account_information"}, 7, null] {
		codes(reasons("GET", "/v1/accounts/42", details)) == {"token_claims_invalid"}
	}
	every entry in ["account_information", {}, {"type": ""}, {"type": 7}, {"actions": ["read"]}] {
		codes(reasons("GET", "/v1/accounts/42", [entry, {"type": "account_information", "actions": ["read"]}])) == {"token_claims_invalid"}
	}
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_required_and_the_carried_types if {
	details := [{"type": "payment_initiation", "actions": ["initiate"]}]
	intent.explain == {"carried": true, "required_type": "account_information", "required_actions": ["read"], "token_types": ["payment_initiation"]} with input as request("GET", "/v1/accounts/1", details) with data.pdp as routes with pdp.route as route_reference.route
}
