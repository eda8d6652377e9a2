package tokenguard.lib.route_test

import data.tokenguard.lib.route
import data.tokenguard.lib.route_reference

request(method, host, path) := {
	"request": {"method": method, "host": host, "path": path},
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
		"claims": {"sub": "alice", "client_id": "web", "aud": "https://api.example.com", "gty": "authorization_code"},
	},
}

routes(rs) := {"routes": rs}

named(name, r) := object.union(r, {"name": name})

codes(rs) := {r.code | some r in rs}

# matched_name: the name of the route a request matches in a table.
matched_name(inp, table) := n if {
	n := route.route.name with input as inp with data.pdp as routes(table) with pdp.route as route_reference.route
}

test_first_matching_route_applies if {
	table := [
		named("one account", {"path": "/v1/accounts/42", "methods": ["GET"]}),
		named("accounts", {"path": "/v1/accounts/*"}),
		named("anything", {"path": "/**"}),
	]
	matched_name(request("GET", "api.example.com", "/v1/accounts/42"), table) == "one account"
	matched_name(request("POST", "api.example.com", "/v1/accounts/42"), table) == "accounts"
	matched_name(request("GET", "api.example.com", "/v1/other"), table) == "anything"
}

test_star_is_one_segment_double_star_any_depth if {
	one := [named("one", {"path": "/v1/accounts/*"})]
	matched_name(request("GET", "h", "/v1/accounts/42"), one) == "one"
	not matched_name(request("GET", "h", "/v1/accounts/42/statements"), one)
	not matched_name(request("GET", "h", "/v1/accounts"), one)
	not matched_name(request("GET", "h", "/v1/accounts/"), one)
	any := [named("any", {"path": "/v1/**"})]
	matched_name(request("GET", "h", "/v1/accounts/42/statements"), any) == "any"
	matched_name(request("GET", "h", "/v1/"), any) == "any"
	not matched_name(request("GET", "h", "/v2/accounts"), any)
	middle := [named("middle", {"path": "/v1/*/statements"})]
	matched_name(request("GET", "h", "/v1/42/statements"), middle) == "middle"
	not matched_name(request("GET", "h", "/v1/42/43/statements"), middle)
}

test_dot_segments_never_match if {
	any := [named("any", {"path": "/v1/**"})]
	not matched_name(request("GET", "h", "/v1/../admin"), any)
	not matched_name(request("GET", "h", "/v1/./x"), any)
}

test_methods_absent_star_or_listed if {
	matched_name(request("DELETE", "h", "/x"), [named("absent", {"path": "/x"})]) == "absent"
	matched_name(request("DELETE", "h", "/x"), [named("star", {"path": "/x", "methods": "*"})]) == "star"
	matched_name(request("DELETE", "h", "/x"), [named("in list", {"path": "/x", "methods": ["GET", "*"]})]) == "in list"
	matched_name(request("get", "h", "/x"), [named("case", {"path": "/x", "methods": ["GET"]})]) == "case"
	not matched_name(request("DELETE", "h", "/x"), [named("get", {"path": "/x", "methods": ["GET"]})])
	not matched_name(request("GET", "h", "/x"), [named("none", {"path": "/x", "methods": []})])
}

test_hosts_exact_case_insensitive_or_one_wildcard_label if {
	exact := [named("exact", {"path": "/**", "host": "API.Example.com"})]
	matched_name(request("GET", "api.example.com", "/x"), exact) == "exact"
	not matched_name(request("GET", "api.example.com.evil.net", "/x"), exact)
	not matched_name(request("GET", "evilapi.example.com", "/x"), exact)
	wild := [named("wild", {"path": "/**", "host": "*.example.com"})]
	matched_name(request("GET", "eu.example.com", "/x"), wild) == "wild"
	matched_name(request("GET", "EU.Example.COM", "/x"), wild) == "wild"
	not matched_name(request("GET", "example.com", "/x"), wild)
	not matched_name(request("GET", "a.b.example.com", "/x"), wild)
	not matched_name(request("GET", "evilexample.com", "/x"), wild)
	matched_name(request("GET", "anything.test", "/x"), [named("star", {"path": "/**", "host": "*"})]) == "star"
}

test_deny_no_matching_route_is_route_unknown if {
	route.reasons == {{
		"code": "route_unknown",
		"status": 403,
		"error": "insufficient_scope",
		"message": "no route for GET api.example.com/v2/x",
	}} with input as request("GET", "api.example.com", "/v2/x") with data.pdp as routes([{"path": "/v1/**"}]) with pdp.route as route_reference.route
}

test_unknown_routes_deny_by_default_and_for_any_value_but_allow if {
	every setting in [{}, {"unknown_routes": "deny"}, {"unknown_routes": "Allow"}, {"unknown_routes": true}] {
		codes(route.reasons) == {"route_unknown"} with input as request("GET", "h", "/x") with data.pdp as setting with pdp.route as route_reference.route
	}
	count(route.reasons) == 0 with input as request("GET", "h", "/x") with data.pdp as {"unknown_routes": "allow"} with pdp.route as route_reference.route
}

test_deny_a_token_for_another_audience if {
	table := routes([{"path": "/**", "audience": "https://api.example.com"}])
	route.reasons == {{
		"code": "audience_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the token is not meant for https://api.example.com",
	}} with input as object.union(request("GET", "h", "/x"), {"token": {"claims": {"aud": "https://other.example.com"}}}) with data.pdp as table with pdp.route as route_reference.route
	codes(route.reasons) == {"audience_mismatch"} with input as object.union(request("GET", "h", "/x"), {"token": {"claims": {"aud": []}}}) with data.pdp as table with pdp.route as route_reference.route
}

test_audience_from_aud_array_or_resource_claim if {
	table := routes([{"path": "/**", "audience": "https://api.example.com"}])
	count(route.reasons) == 0 with input as request("GET", "h", "/x") with data.pdp as table with pdp.route as route_reference.route
	array_aud := object.union(request("GET", "h", "/x"), {"token": {"claims": {"aud": ["https://other.example.com", "https://api.example.com"]}}})
	count(route.reasons) == 0 with input as array_aud with data.pdp as table with pdp.route as route_reference.route
	resource := object.union(request("GET", "h", "/x"), {"token": {"claims": {"aud": "https://as.example.com", "resource": ["https://api.example.com"]}}})
	count(route.reasons) == 0 with input as resource with data.pdp as table with pdp.route as route_reference.route
}

test_deny_a_grant_type_the_route_is_not_open_to if {
	table := routes([{"name": "users", "path": "/**", "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:device_code"]}])
	count(route.reasons) == 0 with input as request("GET", "h", "/x") with data.pdp as table with pdp.route as route_reference.route
	device := object.union(request("GET", "h", "/x"), {"token": {"claims": {"gty": "device_code"}}})
	count(route.reasons) == 0 with input as device with data.pdp as table with pdp.route as route_reference.route
	client := object.union(request("GET", "h", "/x"), {"token": {"claims": {"gty": "client_credentials", "sub": "alice"}}})
	route.reasons == {{
		"code": "grant_type_not_allowed",
		"status": 403,
		"error": "insufficient_scope",
		"message": "route \"users\" is not open to client_credentials tokens",
	}} with input as client with data.pdp as table with pdp.route as route_reference.route
}

test_deny_a_malformed_route_table_as_a_policy_error if {
	every table in [
		[{"path": "v1/no-leading-slash"}],
		[{"path": "/v1/[a-z]"}],
		[{"path": "/v1/{a,b}"}],
		[{"path": "/v1/?"}],
		[{"methods": ["GET"]}],
		[{"path": "/x", "methods": "GET"}],
		[{"path": "/x", "scopes": "accounts:read"}],
		[{"path": "/x", "host": 1}],
		[{"path": "/x", "authorization_details": {"actions": ["read"]}}],
		[{"path": "/**"}, "not a route"],
	] {
		codes(route.reasons) == {"policy_error"} with input as request("GET", "h", "/x") with data.pdp as routes(table) with pdp.route as route_reference.route
	}
	codes(route.reasons) == {"policy_error"} with input as request("GET", "h", "/x") with data.pdp as {"routes": {"path": "/**"}} with pdp.route as route_reference.route
}

test_a_broken_route_never_lets_a_later_one_apply if {
	table := [{"path": "/admin/[x", "scopes": ["admin"]}, {"path": "/**"}]
	not route.route with input as request("GET", "h", "/admin/x") with data.pdp as routes(table) with pdp.route as route_reference.route
}

test_what_the_route_asks_for if {
	table := routes([{"path": "/**", "scopes": ["a", "b"], "audience": "https://api.example.com"}])
	route.scopes == ["a", "b"] with input as request("GET", "h", "/x") with data.pdp as table with pdp.route as route_reference.route
	route.audience == "https://api.example.com" with input as request("GET", "h", "/x") with data.pdp as table with pdp.route as route_reference.route
	route.scopes == [] with input as request("GET", "h", "/x") with data.pdp as {"unknown_routes": "allow"} with pdp.route as route_reference.route
}

test_no_route_reasons_for_a_token_that_failed_verification if {
	inp := object.union(request("GET", "h", "/x"), {"token": {"valid": false}})
	count(route.reasons) == 0 with input as inp with data.pdp as {} with pdp.route as route_reference.route
}

# --- path parameters -------------------------------------------------------

parameters_table := [
	named("matrix", {"path": "/v1/matrix/*", "path_parameters": true}),
	named("closed", {"path": "/v1/closed/*", "path_parameters": false}),
	named("accounts", {"path": "/v1/accounts/*"}),
]

parameter_codes(inp, table) := c if {
	c := codes(route.parameter_reasons) with input as inp with data.pdp as routes(table) with pdp.route as route_reference.route
}

test_path_parameters_refused_unless_the_route_accepts_them if {
	parameter_codes(request("GET", "h", "/v1/accounts/42;jsessionid=x"), parameters_table) == {"request_path_invalid"}
	parameter_codes(request("GET", "h", "/v1/closed/42;v=1"), parameters_table) == {"request_path_invalid"}
	parameter_codes(request("GET", "h", "/v1/matrix/42;v=1"), parameters_table) == set()
	parameter_codes(request("GET", "h", "/v1/accounts/42"), parameters_table) == set()
}

test_path_parameters_refused_without_a_route_or_with_a_broken_table if {
	parameter_codes(request("GET", "h", "/v2/x;a=b"), parameters_table) == {"request_path_invalid"}
	unknown_allowed := {"routes": parameters_table, "unknown_routes": "allow"}
	codes(route.parameter_reasons) == {"request_path_invalid"} with input as request("GET", "h", "/v2/x;a=b")
		with data.pdp as unknown_allowed with pdp.route as route_reference.route
	broken := array.concat(parameters_table, [{"path": 1}])
	parameter_codes(request("GET", "h", "/v1/matrix/42;v=1"), broken) == {"request_path_invalid"}
}

test_path_parameters_refused_whatever_the_token if {
	no_token := object.remove(request("GET", "h", "/v1/accounts/42;x"), ["token"])
	parameter_codes(no_token, parameters_table) == {"request_path_invalid"}
}

test_path_parameters_must_be_a_boolean if {
	some i in route.broken with data.pdp as routes([{"path": "/x", "path_parameters": "yes"}]) with pdp.route as route_reference.route
	i == 0
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_matched_route_and_the_audiences_compared if {
	table := [named("accounts", {"path": "/v1/accounts/*", "audience": "https://other.example.com", "grant_types": ["client_credentials"]})]
	route.explain == {
		"matched": "accounts", "method": "GET", "host": "api.example.com", "path": "/v1/accounts/42",
		"audience": "https://other.example.com", "token_audience": ["https://api.example.com"],
		"grant_types": ["client_credentials"], "grant_type": "authorization_code", "unknown_routes": "deny",
	} with input as request("get", "API.example.com", "/v1/accounts/42") with data.pdp as routes(table) with pdp.route as route_reference.route
}

test_explain_of_an_unknown_route_has_no_match if {
	e := route.explain with input as request("GET", "api.example.com", "/nowhere") with data.pdp as {"routes": [], "unknown_routes": "allow"} with pdp.route as route_reference.route
	not "matched" in object.keys(e)
	e.unknown_routes == "allow"
}
