package tokenguard.lib.grant_test

import data.tokenguard.lib.grant

with_claims(claims) := {"token": {
	"present": true,
	"scheme": "bearer",
	"valid": true,
	"claims": claims,
	"bound": {"method": "none"},
}}

codes(reasons) := {r.code | some r in reasons}

test_grant_type_claim_values_map_to_grant_types if {
	every value, type in {
		"authorization_code": "authorization_code",
		"client_credentials": "client_credentials",
		"refresh_token": "refresh_token",
		"device_code": "device_code",
		"urn:ietf:params:oauth:grant-type:device_code": "device_code",
		"token_exchange": "token_exchange",
		"urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
	} {
		grant.type == type with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
		grant.applies with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
		count(grant.reasons) == 0 with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
	}
}

test_the_grant_type_claim_wins_over_act_and_client_id if {
	grant.type == "authorization_code" with input as with_claims({"gty": "authorization_code", "sub": "web", "client_id": "web", "act": {"sub": "x"}}) with data.pdp as {}
}

test_without_the_claim_act_means_token_exchange if {
	grant.type == "token_exchange" with input as with_claims({"sub": "alice", "act": {"sub": "svc"}}) with data.pdp as {}
}

test_without_the_claim_sub_equal_to_client_id_means_client_credentials if {
	grant.type == "client_credentials" with input as with_claims({"sub": "svc", "client_id": "svc"}) with data.pdp as {}
}

test_without_the_claim_a_user_token_means_authorization_code if {
	grant.type == "authorization_code" with input as with_claims({"sub": "alice", "client_id": "web"}) with data.pdp as {}
	grant.type == "authorization_code" with input as with_claims({}) with data.pdp as {}
}

test_the_grant_type_claim_name_comes_from_data if {
	grant.type == "device_code" with input as with_claims({"sub": "alice", "grant": "device_code"}) with data.pdp as {}
		with data.pdp as {"grant_type_claim": "grant"}
	grant.type == "authorization_code" with input as with_claims({"sub": "alice", "gty": "device_code"}) with data.pdp as {}
		with data.pdp as {"grant_type_claim": "grant"}
}

test_deny_deprecated_password_and_implicit_grants_are_401_invalid_token if {
	every value in ["password", "implicit"] {
		grant.reasons == {{
			"code": "grant_type_not_allowed",
			"status": 401,
			"error": "invalid_token",
			"message": sprintf("grant type %q is deprecated and not allowed", [value]),
		}} with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
		grant.type == "" with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
		not grant.applies with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
	}
}

test_deny_deprecated_grant_even_when_data_allows_it if {
	codes(grant.reasons) == {"grant_type_not_allowed"} with input as with_claims({"gty": "password"}) with data.pdp as {}
		with data.pdp as {"grant_types": {"allowed": ["password", "authorization_code"]}}
}

test_deny_unknown_grant_type_values if {
	every value in ["jwt-bearer", "", "AUTHORIZATION_CODE", 1, null, {"a": 1}, ["authorization_code"]] {
		codes(grant.reasons) == {"grant_type_not_allowed"} with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
		grant.type == "" with input as with_claims({"sub": "alice", "gty": value}) with data.pdp as {}
	}
}

test_deny_grant_type_switched_off_in_data if {
	grant.reasons == {{
		"code": "grant_type_not_allowed",
		"status": 401,
		"error": "invalid_token",
		"message": "grant type \"device_code\" is not enabled",
	}} with input as with_claims({"sub": "alice", "gty": "device_code"}) with data.pdp as {}
		with data.pdp as {"grant_types": {"allowed": ["authorization_code"]}}
	grant.type == "device_code" with input as with_claims({"sub": "alice", "gty": "device_code"}) with data.pdp as {}
		with data.pdp as {"grant_types": {"allowed": ["authorization_code"]}}
	not grant.applies with input as with_claims({"sub": "alice", "gty": "device_code"}) with data.pdp as {}
		with data.pdp as {"grant_types": {"allowed": ["authorization_code"]}}
}

test_deny_every_grant_when_the_allowed_list_is_malformed if {
	codes(grant.reasons) == {"grant_type_not_allowed"} with input as with_claims({"sub": "alice"}) with data.pdp as {}
		with data.pdp as {"grant_types": {"allowed": "authorization_code"}}
}

test_all_grant_types_are_allowed_with_empty_data if {
	grant.allowed == grant.known with data.pdp as {}
}

test_no_grant_type_for_an_invalid_token if {
	grant.type == "" with input as {"token": {"present": true, "valid": false, "claims": {"gty": "authorization_code"}}} with data.pdp as {}
	count(grant.reasons) == 0 with input as {"token": {"present": true, "valid": false}} with data.pdp as {}
	grant.type == "" with input as {} with data.pdp as {}
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_grant_type_and_the_claim_it_came_from if {
	grant.explain == {"grant_type": "client_credentials", "claim": "gty", "claimed": true, "allowed": ["client_credentials"]} with input as with_claims({"sub": "svc", "gty": "client_credentials"}) with data.pdp as {"grant_types": {"allowed": ["client_credentials"]}}
}
