package tokenguard.lib.token_test

import data.tokenguard.lib.token

valid_token(claims) := {
	"present": true,
	"scheme": "bearer",
	"valid": true,
	"source": "jwt",
	"claims": claims,
	"bound": {"method": "none"},
}

failed_token(code, message) := {
	"present": true,
	"scheme": "bearer",
	"valid": false,
	"claims": {},
	"error": {"code": code, "message": message},
}

codes(reasons) := {r.code | some r in reasons}

test_ok_for_a_valid_token_with_well_formed_claims if {
	token.ok with input as {"token": valid_token({"sub": "alice", "client_id": "web", "scope": "read"})}
	count(token.reasons) == 0 with input as {"token": valid_token({"sub": "alice"})}
}

test_deny_no_token_is_token_missing_401_without_challenge_error if {
	token.reasons == {{"code": "token_missing", "status": 401, "message": "no access token was presented"}} with input as {"token": {"present": false}}
}

test_deny_garbage_input_is_token_missing if {
	codes(token.reasons) == {"token_missing"} with input as {}
	codes(token.reasons) == {"token_missing"} with input as {"token": "eyJ..."}
	codes(token.reasons) == {"token_missing"} with input as {"token": {"present": "true", "valid": true}}
	not token.ok with input as []
}

test_deny_every_go_error_code_is_passed_through_as_401_invalid_token if {
	every code in token.go_errors - {"token_missing", "request_invalid"} {
		token.reasons == {{"code": code, "status": 401, "error": "invalid_token", "message": "m"}} with input as {"token": failed_token(code, "m")}
	}
}

test_deny_expired_token_is_401_invalid_token_with_go_message if {
	token.reasons == {{
		"code": "token_expired",
		"status": 401,
		"error": "invalid_token",
		"message": "token expired 2026-11-27T10:00:00Z",
	}} with input as {"token": failed_token("token_expired", "token expired 2026-11-27T10:00:00Z")}
}

test_deny_request_invalid_is_400_invalid_request if {
	token.reasons == {{"code": "request_invalid", "status": 400, "error": "invalid_request", "message": "two Authorization headers"}} with input as {"token": failed_token("request_invalid", "two Authorization headers")}
}

test_deny_request_invalid_without_a_token_is_still_400 if {
	codes(token.reasons) == {"request_invalid"} with input as {"token": {"present": false, "error": {"code": "request_invalid", "message": "m"}}}
}

test_deny_go_token_missing_code_has_no_challenge_error if {
	token.reasons == {{"code": "token_missing", "status": 401, "message": "m"}} with input as {"token": failed_token("token_missing", "m")}
}

test_deny_unknown_go_error_code_is_token_invalid if {
	codes(token.reasons) == {"token_invalid"} with input as {"token": failed_token("token_cursed", "m")}
}

test_deny_invalid_token_without_error_gets_a_default_message if {
	token.reasons == {{
		"code": "token_invalid",
		"status": 401,
		"error": "invalid_token",
		"message": "the access token could not be verified",
	}} with input as {"token": {"present": true, "valid": false}}
}

test_deny_valid_must_be_boolean_true if {
	codes(token.reasons) == {"token_expired"} with input as {"token": object.union(failed_token("token_expired", "m"), {"valid": "true"})}
	not token.ok with input as {"token": object.union(valid_token({}), {"valid": 1})}
}

test_deny_unsupported_scheme_is_401_without_challenge_error if {
	token.reasons == {{"code": "token_scheme_unsupported", "status": 401, "message": "the authorization scheme is not Bearer or DPoP"}} with input as {"token": object.union(valid_token({}), {"scheme": "basic"})}
	codes(token.reasons) == {"token_scheme_unsupported"} with input as {"token": object.remove(valid_token({}), ["scheme"])}
}

test_deny_claims_not_an_object if {
	codes(token.reasons) == {"token_claims_invalid"} with input as {"token": valid_token("alice")}
	codes(token.reasons) == {"token_claims_invalid"} with input as {"token": valid_token(null)}
	codes(token.reasons) == {"token_claims_invalid"} with input as {"token": object.remove(valid_token({}), ["claims"])}
	token.claims == {} with input as {"token": valid_token(["sub"])}
}

test_deny_claims_of_the_wrong_type if {
	every claims in [{"sub": 42}, {"client_id": ["web"]}, {"scope": ["read"]}, {"sub": ""}, {"scp": "read"}, {"scp": ["read", 1]}] {
		codes(token.reasons) == {"token_claims_invalid"} with input as {"token": valid_token(claims)}
	}
}

test_deny_claims_with_control_characters_that_could_split_headers if {
	codes(token.reasons) == {"token_claims_invalid"} with input as {"token": valid_token({"sub": "alice\r\nx-tokenguard-subject: admin"})}
	codes(token.reasons) == {"token_claims_invalid"} with input as {"token": valid_token({"scp": ["read\nwrite"]})}
}

test_claims_are_empty_unless_the_token_is_valid if {
	token.claims == {} with input as {"token": object.union(failed_token("token_expired", "m"), {"claims": {"sub": "alice"}})}
}

test_scopes_come_from_the_scope_string if {
	token.scopes == ["read", "write"] with input as {"token": valid_token({"scope": " read  write "})}
}

test_scopes_come_from_the_scp_array_without_a_scope_claim if {
	token.scopes == ["read", "write"] with input as {"token": valid_token({"scp": ["read", "write"]})}
}

test_scope_string_wins_over_scp if {
	token.scopes == ["read"] with input as {"token": valid_token({"scope": "read", "scp": ["admin"]})}
}

test_subject_and_client_id_are_empty_when_absent if {
	token.subject == "" with input as {"token": valid_token({})}
	token.client_id == "" with input as {"token": valid_token({})}
	token.scopes == [] with input as {"token": valid_token({})}
}

test_non_ascii_claims_are_accepted if {
	token.ok with input as {"token": valid_token({"sub": "jürgen", "scope": "read"})}
	token.subject == "jürgen" with input as {"token": valid_token({"sub": "jürgen"})}
}

# --- explain ---------------------------------------------------------------

test_explain_says_whether_the_token_verified_and_why_not if {
	token.explain == {"present": true, "valid": true, "scheme": "bearer", "subject": "alice", "client_id": "web"} with input as {"token": valid_token({"sub": "alice", "client_id": "web"})}
	token.explain == {"present": true, "valid": false, "scheme": "bearer", "error": "token_expired"} with input as {"token": failed_token("token_expired", "expired")}
}
