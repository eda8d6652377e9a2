package tokenguard.main_test

import data.tokenguard.lib.grant
import data.tokenguard.main

user_claims := {"sub": "alice", "client_id": "web", "scope": "read", "gty": "authorization_code"}

request(token) := {
	"now": 1795000000000000000,
	"environment": "prod",
	"context": {},
	"request": {
		"method": "GET",
		"url": "https://api.example.com/v1/accounts/42?x=1",
		"scheme": "https",
		"host": "api.example.com",
		"port": 443,
		"path": "/v1/accounts/42",
		"query": {"x": ["1"]},
		"headers": {"user-agent": ["curl/8"]},
		"remote_ip": "203.0.113.7",
	},
	"token": token,
}

valid(claims) := {
	"present": true,
	"scheme": "bearer",
	"valid": true,
	"source": "jwt",
	"hash": "h",
	"issuer": "https://as.example.com",
	"claims": claims,
	"bound": {"method": "none"},
}

failed(code, message) := {
	"present": true,
	"scheme": "bearer",
	"valid": false,
	"error": {"code": code, "message": message},
	"claims": {},
}

r(code, status) := {"code": code, "status": status, "message": code}

codes(d) := [x.code | some x in d.reasons]

denied(d) if {
	d.allow == false
	d.status != 200
	count(d.reasons) > 0
	is_string(d.headers["www-authenticate"])
	d.upstream_headers == {}
}

# --- shape -----------------------------------------------------------------

test_allow_has_the_full_decision_shape if {
	main.decision == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"headers": {},
		"upstream_headers": {
			"x-tokenguard-subject": "alice",
			"x-tokenguard-client-id": "web",
			"x-tokenguard-scopes": "read",
			"x-tokenguard-grant-type": "authorization_code",
		},
		"grant_type": "authorization_code",
		"module": "grants.authorization_code",
	} with input as request(valid(user_claims)) with pdp.revocation as not_revoked
}

test_deny_empty_input_is_token_missing_with_a_bare_challenge if {
	main.decision == {
		"allow": false,
		"status": 401,
		"reasons": [{"code": "token_missing", "status": 401, "message": "no access token was presented"}],
		"headers": {"www-authenticate": `Bearer realm="tokenguard"`},
		"upstream_headers": {},
		"grant_type": "",
		"module": "",
	} with input as {} with pdp.revocation as not_revoked
}

test_deny_garbage_input if {
	every inp in [[], "token", null, 7, {"token": "eyJhbGciOi"}, {"token": []}, {"token": {"present": true}}] {
		denied(main.decision) with input as inp with pdp.revocation as not_revoked
	}
}

test_deny_token_missing_fields if {
	every token in [
		{"present": true},
		{"present": true, "valid": true},
		{"valid": true, "scheme": "bearer", "claims": user_claims},
		object.remove(valid(user_claims), ["valid"]),
		object.remove(valid(user_claims), ["scheme"]),
		object.remove(valid(user_claims), ["claims"]),
	] {
		denied(main.decision) with input as request(token) with pdp.revocation as not_revoked
	}
}

test_deny_claims_not_an_object_is_401_invalid_token if {
	every claims in ["alice", ["sub"], null, 1, true] {
		d := main.decision with input as request(valid(claims)) with pdp.revocation as not_revoked
		denied(d)
		codes(d) == ["token_claims_invalid"]
		d.status == 401
		d.grant_type == ""
		d.module == ""
	}
}

# --- token validity and challenges ----------------------------------------

test_deny_expired_token_is_401_invalid_token if {
	d := main.decision with input as request(failed("token_expired", "token expired 2026-11-27T10:00:00Z")) with pdp.revocation as not_revoked
	d.status == 401
	codes(d) == ["token_expired"]
	d.headers == {"www-authenticate": `Bearer realm="tokenguard", error="invalid_token", error_description="token expired 2026-11-27T10:00:00Z"`}
	d.grant_type == ""
	d.module == ""
}

test_deny_two_authorization_headers_is_400_invalid_request if {
	d := main.decision with input as request(failed("request_invalid", "more than one Authorization header")) with pdp.revocation as not_revoked
	d.status == 400
	codes(d) == ["request_invalid"]
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_request", error_description="more than one Authorization header"`
}

test_deny_challenge_escapes_quotes_in_go_messages if {
	d := main.decision with input as request(failed("issuer_untrusted", `issuer "https://evil\example" is not trusted`)) with pdp.revocation as not_revoked
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="issuer \"https://evil\\example\" is not trusted"`
}

test_deny_dpop_token_problem_gets_a_dpop_challenge_with_algs if {
	token := object.union(failed("token_expired", "expired"), {"scheme": "dpop"})
	d := main.decision with input as request(token) with pdp.revocation as not_revoked
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_token", error_description="expired", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

test_deny_dpop_proof_problem_is_invalid_dpop_proof if {
	token := object.union(valid(user_claims), {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "key-1"}})
	inp := object.union(request(token), {"dpop": {"present": true, "valid": false, "error": {"code": "dpop_replayed", "message": "proof replayed"}}})
	d := main.decision with input as inp with pdp.revocation as not_revoked
	d.status == 401
	codes(d) == ["dpop_proof_invalid"]
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_dpop_proof", error_description="proof replayed", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

test_deny_dpop_bound_token_as_bearer_gets_a_dpop_challenge if {
	token := object.union(valid(user_claims), {"bound": {"method": "dpop", "jkt": "key-1"}})
	d := main.decision with input as request(token) with pdp.revocation as not_revoked
	codes(d) == ["dpop_bound_token_as_bearer"]
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_token", error_description="the DPoP-bound token was presented as a bearer token", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

test_allow_dpop_bound_token_with_a_proof_by_its_key if {
	token := object.union(valid(user_claims), {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "key-1"}})
	inp := object.union(request(token), {"dpop": {"present": true, "valid": true, "jkt": "key-1"}})
	main.decision.allow with input as inp with pdp.revocation as not_revoked
	main.decision.headers == {} with input as inp with pdp.revocation as not_revoked
}

test_deny_deprecated_password_grant_is_401_invalid_token if {
	d := main.decision with input as request(valid(object.union(user_claims, {"gty": "password"}))) with pdp.revocation as not_revoked
	d.status == 401
	codes(d) == ["grant_type_not_allowed"]
	d.grant_type == ""
	d.module == ""
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="grant type \"password\" is deprecated and not allowed"`
}

test_deny_implicit_grant if {
	codes(main.decision) == ["grant_type_not_allowed"] with input as request(valid(object.union(user_claims, {"gty": "implicit"}))) with pdp.revocation as not_revoked
}

# --- status precedence, ordering, fail closed ------------------------------

test_status_precedence_400_before_401_before_403 if {
	main.decision.status == 400 with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {r("c", 403), r("b", 401), r("a", 400)}
	main.decision.status == 401 with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {r("c", 403), r("b", 401)}
	main.decision.status == 403 with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {r("c", 403)}
}

test_challenge_follows_the_reason_that_decides_the_status if {
	d := main.decision with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {
			{"code": "a_scope", "status": 403, "error": "insufficient_scope", "message": "m"},
			{"code": "z_token", "status": 401, "error": "invalid_token", "message": "bad token"},
		}
	d.status == 401
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="bad token"`
}

test_deny_403_challenge_is_insufficient_scope_with_the_required_scopes if {
	d := main.decision with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {{
			"code": "scope_missing", "status": 403, "error": "insufficient_scope",
			"message": "accounts:write is required", "scope": ["accounts:write"],
		}}
	d.status == 403
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="insufficient_scope", error_description="accounts:write is required", scope="accounts:write"`
}

test_reasons_are_sorted_by_code if {
	codes(main.decision) == ["a", "b", "c", "d"] with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.lib.sender.reasons as {r("d", 401), r("b", 403), r("c", 400), r("a", 401)}
}

test_grant_module_reasons_are_applied if {
	d := main.decision with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.grants.authorization_code.reasons as {r("grant_specific", 403)}
	codes(d) == ["grant_specific"]
	d.module == "grants.authorization_code"
	d.upstream_headers == {}
}

test_deny_a_guardrail_listed_without_a_lib_module_is_a_policy_error if {
	d := main.decision with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.grants.authorization_code.guardrails as {"sender", "lifetme"}
	codes(d) == ["policy_error"]
	d.status == 500
	d.reasons[0].message == "guardrail \"lifetme\" is not defined"
}

test_deny_a_helper_module_listed_as_a_guardrail_is_a_policy_error if {
	codes(main.decision) == ["policy_error"] with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.grants.authorization_code.guardrails as {"sender", "challenge"}
}

test_deny_a_grant_module_without_upstream_headers_fails_closed if {
	d := main.decision with input as request(valid(user_claims)) with pdp.revocation as not_revoked
		with data.tokenguard.grants.authorization_code.upstream_headers as "x"
	denied(d)
	codes(d) == ["policy_error"]
}

test_every_grant_type_has_a_module_applying_the_sender_constraint if {
	every g in grant.known {
		"sender" in data.tokenguard.grants[g].guardrails
	}
}

# --- policy data -----------------------------------------------------------

test_allow_with_empty_or_malformed_policy_data if {
	main.decision.allow with input as request(valid(user_claims)) with data.pdp as {} with pdp.revocation as not_revoked
	main.decision.allow with input as request(valid(user_claims)) with data.pdp as "garbage" with pdp.revocation as not_revoked
}

test_realm_comes_from_policy_data if {
	main.decision.headers["www-authenticate"] == `Bearer realm="accounts"` with input as {} with data.pdp as {"realm": "accounts"} with pdp.revocation as not_revoked
}

# The store is asked through pdp.revocation; these tests are about other
# guardrails, so no token is revoked.
not_revoked(_) := {"revoked": false}

test_every_grant_type_has_a_module_applying_revocation if {
	every g in grant.known {
		"revocation" in data.tokenguard.grants[g].guardrails
	}
}
