package tokenguard.lib.upstream_test

import data.tokenguard.lib.route_reference
import data.tokenguard.lib.upstream

with_claims(claims) := {"token": {
	"present": true,
	"scheme": "bearer",
	"valid": true,
	"claims": claims,
	"bound": {"method": "none"},
}}

claims := {"sub": "alice", "client_id": "web", "scope": "read write", "roles": ["admin"], "groups": ["ops"]}

test_client_headers_never_name_a_user if {
	upstream.client_headers("client_credentials") == {
		"x-tokenguard-client-id": "web",
		"x-tokenguard-scopes": "read write",
		"x-tokenguard-grant-type": "client_credentials",
	} with input as with_claims(claims) with pdp.route as route_reference.route
}

test_user_headers_add_the_subject if {
	upstream.user_headers("authorization_code") == {
		"x-tokenguard-subject": "alice",
		"x-tokenguard-client-id": "web",
		"x-tokenguard-scopes": "read write",
		"x-tokenguard-grant-type": "authorization_code",
	} with input as with_claims(claims) with pdp.route as route_reference.route
}

test_absent_claims_leave_their_headers_out if {
	upstream.user_headers("authorization_code") == {"x-tokenguard-grant-type": "authorization_code"} with input as with_claims({}) with pdp.route as route_reference.route
}

test_scopes_header_from_scp if {
	upstream.client_headers("client_credentials")["x-tokenguard-scopes"] == "read write" with input as with_claims({"scp": ["read", "write"]}) with pdp.route as route_reference.route
}

test_no_claims_are_read_from_a_token_that_failed_verification if {
	upstream.user_headers("authorization_code") == {"x-tokenguard-grant-type": "authorization_code"} with input as {"token": {
		"present": true,
		"valid": false,
		"claims": claims,
	}}
		with pdp.route as route_reference.route
}

# The scopes header carries the effective scopes: what the environment and
# the caller's roles leave (lib/scope.rego).
test_scopes_header_carries_the_effective_scopes if {
	inp := object.union(with_claims({"sub": "alice", "scope": "read write admin", "roles": ["reader"]}), {"environment": "prod"})
	pdp_data := {"environments": {"prod": {"roles": {"reader": ["read", "admin"]}, "frozen_scopes": ["admin"]}}}
	upstream.user_headers("authorization_code")["x-tokenguard-scopes"] == "read" with input as inp with data.pdp as pdp_data with pdp.route as route_reference.route
}

test_no_scopes_header_when_no_scope_is_left if {
	inp := object.union(with_claims({"sub": "alice", "scope": "admin"}), {"environment": "prod"})
	pdp_data := {"environments": {"prod": {"frozen_scopes": ["admin"]}}}
	not "x-tokenguard-scopes" in object.keys(upstream.user_headers("authorization_code")) with input as inp with data.pdp as pdp_data with pdp.route as route_reference.route
}
