package tokenguard.lib.refresh_test

import data.tokenguard.lib.refresh

now := 1795000000000000000

hour := 3600000000000

verified := {
	"present": true, "valid": true, "hash": "rh", "issuer": "https://as.example.com",
	"subject": "alice", "session_id": "s-1", "client_id": "web", "reused": false,
	"family": {"id": "f", "created": now - hour, "rotations": 2},
}

at_endpoint(refresh_token) := {"now": now, "token_endpoint": {"grant_type": "refresh_token", "refresh": refresh_token}}

reused(changes) := at_endpoint(object.union(verified, object.union({"reused": true}, changes)))

codes(rs) := {r.code | some r in rs}

revoke(kind, value) := {{"revoke": {"kind": kind, "iss": "https://as.example.com", "value": value, "reason": "refresh_token_reused"}}}

test_a_verified_refresh_token_used_once_passes if {
	count(refresh.reasons) == 0 with input as at_endpoint(verified) with data.pdp as {}
	count(refresh.effects) == 0 with input as at_endpoint(verified) with data.pdp as {}
}

test_other_grant_types_pass if {
	every gt in ["authorization_code", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", ""] {
		inp := {"now": now, "token_endpoint": {"grant_type": gt, "refresh": object.union(verified, {"reused": true})}}
		count(refresh.reasons) == 0 with input as inp
		count(refresh.effects) == 0 with input as inp
	}
}

test_deny_reuse_as_invalid_grant_and_revoke_the_session if {
	refresh.reasons == {{
		"code": "refresh_token_reused",
		"status": 400,
		"error": "invalid_grant",
		"message": "the refresh token has already been used",
	}} with input as reused({}) with data.pdp as {}
	refresh.effects == revoke("session", "s-1") with input as reused({}) with data.pdp as {}
}

test_reuse_without_a_session_revokes_the_subject if {
	refresh.effects == revoke("subject", "alice") with input as reused({"session_id": ""}) with data.pdp as {}
	refresh.effects == revoke("subject", "alice") with input as json.remove(reused({}), ["token_endpoint/refresh/session_id"]) with data.pdp as {}
}

test_the_reuse_policy_comes_from_data if {
	subject := {"token_endpoint": {"refresh_reuse": "revoke_subject"}}
	refresh.effects == revoke("subject", "alice") with input as reused({}) with data.pdp as subject
	deny_only := {"token_endpoint": {"refresh_reuse": "deny"}}
	codes(refresh.reasons) == {"refresh_token_reused"} with input as reused({}) with data.pdp as deny_only
	count(refresh.effects) == 0 with input as reused({}) with data.pdp as deny_only
	unknown := {"token_endpoint": {"refresh_reuse": "ignore"}}
	refresh.effects == revoke("session", "s-1") with input as reused({}) with data.pdp as unknown
}

test_reuse_with_nobody_to_revoke_still_denies if {
	inp := reused({"session_id": "", "subject": ""})
	codes(refresh.reasons) == {"refresh_token_reused"} with input as inp with data.pdp as {}
	count(refresh.effects) == 0 with input as inp with data.pdp as {}
	count(refresh.effects) == 0 with input as reused({"issuer": ""}) with data.pdp as {}
}

test_deny_a_family_older_than_refresh_max_age if {
	old := at_endpoint(object.union(verified, {"family": {"created": (now - (720 * hour)) - 1}}))
	refresh.reasons == {{
		"code": "refresh_token_expired",
		"status": 400,
		"error": "invalid_grant",
		"message": "the refresh token's grant is older than 2592000s",
	}} with input as old with data.pdp as {}
	count(refresh.reasons) == 0 with input as at_endpoint(object.union(verified, {"family": {"created": now - (720 * hour)}})) with data.pdp as {}
	short := {"token_endpoint": {"refresh_max_age": "30m"}}
	codes(refresh.reasons) == {"refresh_token_expired"} with input as at_endpoint(verified) with data.pdp as short
}

test_a_family_without_a_creation_time_is_not_judged_by_age if {
	every created in [0, -5, null, "yesterday"] {
		inp := at_endpoint(object.union(verified, {"family": {"created": created}}))
		count(refresh.reasons) == 0 with input as inp with data.pdp as {}
	}
}

test_deny_an_unverified_refresh_token if {
	inp := at_endpoint({"present": true, "valid": false, "reused": false, "error": {"code": "token_signature_invalid", "message": "bad signature"}})
	refresh.reasons == {{
		"code": "refresh_token_invalid",
		"status": 400,
		"error": "invalid_grant",
		"message": "bad signature",
	}} with input as inp with data.pdp as {}
}

# Go only reports reuse of a verified token; should it say so of another,
# nothing is revoked: a forged token can never revoke someone's session.
test_an_unverified_token_never_revokes if {
	inp := at_endpoint({"present": true, "valid": false, "reused": true, "issuer": "https://as.example.com", "session_id": "victim"})
	codes(refresh.reasons) == {"refresh_token_invalid"} with input as inp with data.pdp as {}
	count(refresh.effects) == 0 with input as inp with data.pdp as {}
}

test_deny_a_missing_refresh_token_as_invalid_request if {
	refresh.reasons == {{
		"code": "refresh_token_invalid",
		"status": 400,
		"error": "invalid_request",
		"message": "no refresh token was presented",
	}} with input as at_endpoint({"present": false, "valid": false, "reused": false})
	codes(refresh.reasons) == {"refresh_token_invalid"} with input as {"now": now, "token_endpoint": {"grant_type": "refresh_token"}}
	codes(refresh.reasons) == {"refresh_token_invalid"} with input as at_endpoint({"present": true, "valid": "true"})
}

test_a_malformed_max_age_is_a_policy_error if {
	codes(refresh.reasons) == {"policy_error"} with input as at_endpoint(verified) with data.pdp as {"token_endpoint": {"refresh_max_age": "a month"}}
}

# --- explain ---------------------------------------------------------------

test_explain_says_whether_the_refresh_token_was_reused if {
	refresh.explain == {"present": true, "valid": true, "reused": true, "reuse_policy": "revoke_session", "max_age_s": 2592000} with input as reused({}) with data.pdp as {}
	count(refresh.explain) == 0 with input as {"token_endpoint": {"grant_type": "client_credentials"}} with data.pdp as {}
}
