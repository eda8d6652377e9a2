package tokenguard.lib.revocation_test

import data.tokenguard.lib.revocation

valid_token := {
	"present": true, "scheme": "bearer", "valid": true, "issuer": "https://as.example.com",
	"claims": {"sub": "alice", "client_id": "web", "jti": "j1", "sid": "s1", "iat": 1700000000},
	"bound": {"method": "none"},
}

not_revoked(_) := {"revoked": false}

revoked_as(kind) := {"revoked": true, "kind": kind, "at": 1700000100000000000, "reason": "logout"}

revoked_jti(_) := revoked_as("jti")

revoked_subject(_) := revoked_as("subject")

revoked_session(_) := revoked_as("session")

revoked_client(_) := revoked_as("client")

revoked_unknown(_) := revoked_as("tenant")

# echo returns its argument as the reason, so a test can see what was asked.
echo(ref) := {"revoked": true, "kind": "jti", "reason": json.marshal(ref)}

codes(rs) := {r.code | some r in rs}

test_a_token_that_is_not_revoked_passes if {
	count(revocation.reasons) == 0 with input.token as valid_token with pdp.revocation as not_revoked
}

test_each_kind_has_its_reason_code if {
	codes(revocation.reasons) == {"token_revoked"} with input.token as valid_token with pdp.revocation as revoked_jti
	codes(revocation.reasons) == {"subject_revoked"} with input.token as valid_token with pdp.revocation as revoked_subject
	codes(revocation.reasons) == {"session_revoked"} with input.token as valid_token with pdp.revocation as revoked_session
	codes(revocation.reasons) == {"client_revoked"} with input.token as valid_token with pdp.revocation as revoked_client
}

test_an_unknown_kind_still_denies if {
	codes(revocation.reasons) == {"token_revoked"} with input.token as valid_token with pdp.revocation as revoked_unknown
}

test_revoked_is_401_invalid_token if {
	some r in revocation.reasons with input.token as valid_token with pdp.revocation as revoked_subject
	r.status == 401
	r.error == "invalid_token"
	contains(r.message, "2023-11-14T22:15:00Z")
}

test_the_store_is_asked_about_the_token_claims if {
	some r in revocation.reasons with input.token as valid_token with pdp.revocation as echo
	r.code == "token_revoked"
	revocation.ref == {
		"iss": "https://as.example.com", "sub": "alice", "jti": "j1", "sid": "s1",
		"client_id": "web", "iat": 1700000000,
	} with input.token as valid_token
}

test_missing_claims_are_asked_as_empty_and_iat_zero if {
	tok := {"present": true, "scheme": "bearer", "valid": true, "issuer": "https://as.example.com", "claims": {"jti": 7}, "bound": {"method": "none"}}
	revocation.ref == {"iss": "https://as.example.com", "sub": "", "jti": "", "sid": "", "client_id": "", "iat": 0} with input.token as tok
}

test_a_token_without_jti_is_asked_by_its_hash if {
	tok := {"present": true, "scheme": "bearer", "valid": true, "issuer": "https://as.example.com", "hash": "abc", "claims": {"sub": "alice"}, "bound": {"method": "none"}}
	revocation.ref.jti == "sha256:abc" with input.token as tok
}

test_an_invalid_token_is_not_looked_up if {
	count(revocation.reasons) == 0 with input.token as object.union(valid_token, {"valid": false}) with pdp.revocation as revoked_jti
}

failing(_) := x if {
	x := {"revoked": false}
	false
}

test_no_answer_from_the_store_fails_closed if {
	codes(revocation.reasons) == {"policy_error"} with input.token as valid_token with pdp.revocation as failing
}

# --- explain ---------------------------------------------------------------

test_explain_says_whether_and_how_the_token_was_revoked if {
	revocation.explain == {"revoked": false, "jti": "j1", "session_id": "s1"} with input as {"token": valid_token} with pdp.revocation as not_revoked
	revocation.explain == {"revoked": true, "kind": "session", "jti": "j1", "session_id": "s1"} with input as {"token": valid_token} with pdp.revocation as revoked_session
}
