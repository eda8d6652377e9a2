package tokenguard.main_test

import data.tokenguard.fixtures
import data.tokenguard.lib.grant
import data.tokenguard.lib.route_reference

user := fixtures.input_for(fixtures.user_claims("authorization_code"))

failed(code, message) := fixtures.patched(user, {"token": {
	"valid": false,
	"error": {"code": code, "message": message},
	"claims": {},
}})

with_token(token) := object.union(object.remove(user, ["token"]), {"token": token})

r(code, status) := {"code": code, "status": status, "message": code}

codes(d) := fixtures.codes(d)

denied(d) if {
	d.allow == false
	d.status != 200
	count(d.reasons) > 0
	is_string(d.headers["www-authenticate"])
	d.upstream_headers == {}
	d.effects == []
}

# decide_sender_reasons: fixtures.decide with the sender guardrail's reasons
# replaced.
decide_sender_reasons(inp, rs) := d if {
	d := fixtures.decide(inp) with data.tokenguard.lib.sender.reasons as rs
}

# --- shape -----------------------------------------------------------------

test_allow_has_the_full_decision_shape if {
	fixtures.decide(user) == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"warnings": [],
		"headers": {},
		"upstream_headers": {
			"x-tokenguard-subject": "alice",
			"x-tokenguard-client-id": "web",
			"x-tokenguard-scopes": "accounts:read",
			"x-tokenguard-grant-type": "authorization_code",
		},
		"grant_type": "authorization_code",
		"module": "grants.authorization_code",
		"effects": [],
		"valid_until": fixtures.now + 3300000000001,
	}
}

test_deny_empty_input_is_token_missing_with_a_bare_challenge if {
	fixtures.decide({}) == {
		"allow": false,
		"status": 401,
		"reasons": [{"code": "token_missing", "status": 401, "message": "no access token was presented"}],
		"warnings": [],
		"headers": {"www-authenticate": `Bearer realm="tokenguard"`},
		"upstream_headers": {},
		"grant_type": "",
		"module": "",
		"effects": [],
		"valid_until": null,
	}
}

test_deny_garbage_input if {
	every inp in [[], "token", null, 7, {"token": "eyJhbGciOi"}, {"token": []}, {"token": {"present": true}}] {
		denied(fixtures.decide(inp))
	}
}

test_deny_token_missing_fields if {
	every token in [
		{"present": true},
		{"present": true, "valid": true},
		{"valid": true, "scheme": "bearer", "claims": user.token.claims},
		object.remove(user.token, ["valid"]),
		object.remove(user.token, ["scheme"]),
		object.remove(user.token, ["claims"]),
	] {
		denied(fixtures.decide(with_token(token)))
	}
}

test_deny_claims_not_an_object_is_401_invalid_token if {
	every claims in ["alice", ["sub"], null, 1, true] {
		d := fixtures.decide(with_token(fixtures.token(claims)))
		denied(d)
		codes(d) == ["token_claims_invalid"]
		d.status == 401
		d.grant_type == ""
		d.module == ""
	}
}

# --- policy data ----------------------------------------------------------

test_with_empty_or_malformed_policy_data_every_request_is_an_unknown_route if {
	fixtures.codes(fixtures.decide_with(user, {})) == ["route_unknown"]
	fixtures.codes(fixtures.decide_with(user, "garbage")) == ["route_unknown"]
	fixtures.decide_with(user, {"unknown_routes": "allow"}).allow
}

test_realm_comes_from_policy_data if {
	fixtures.decide_with({}, {"realm": "accounts"}).headers["www-authenticate"] == `Bearer realm="accounts"`
}

# --- token validity and challenges ----------------------------------------

test_deny_expired_token_is_401_invalid_token if {
	d := fixtures.decide(failed("token_expired", "token expired 2026-11-27T10:00:00Z"))
	d.status == 401
	codes(d) == ["token_expired"]
	d.headers == {"www-authenticate": `Bearer realm="tokenguard", error="invalid_token", error_description="token expired 2026-11-27T10:00:00Z"`}
	d.grant_type == ""
	d.module == ""
}

test_deny_two_authorization_headers_is_400_invalid_request if {
	d := fixtures.decide(failed("request_invalid", "more than one Authorization header"))
	d.status == 400
	codes(d) == ["request_invalid"]
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_request", error_description="more than one Authorization header"`
}

test_deny_challenge_escapes_quotes_in_go_messages if {
	d := fixtures.decide(failed("issuer_untrusted", `issuer "https://evil\example" is not trusted`))
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="issuer \"https://evil\\example\" is not trusted"`
}

test_deny_dpop_token_problem_gets_a_dpop_challenge_with_algs if {
	d := fixtures.decide(fixtures.patched(failed("token_expired", "expired"), {"token": {"scheme": "dpop"}}))
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_token", error_description="expired", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

dpop_user := fixtures.patched(user, {"token": {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "key-1"}}})

test_deny_dpop_proof_problem_is_invalid_dpop_proof if {
	inp := fixtures.patched(dpop_user, {"dpop": {"present": true, "valid": false, "error": {"code": "dpop_proof_invalid", "message": "htu mismatch"}}})
	d := fixtures.decide(inp)
	d.status == 401
	codes(d) == ["dpop_proof_invalid"]
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_dpop_proof", error_description="htu mismatch", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

test_deny_replayed_dpop_proof if {
	inp := fixtures.patched(dpop_user, {"dpop": {"present": true, "valid": false, "error": {"code": "dpop_replayed", "message": "proof replayed"}}})
	d := fixtures.decide(inp)
	codes(d) == ["dpop_replayed"]
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_dpop_proof", error_description="proof replayed", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

# D12: 401 with error="use_dpop_nonce" and the nonce to use.
test_deny_dpop_nonce_required_carries_the_nonce if {
	inp := fixtures.patched(dpop_user, {"dpop": {
		"present": true, "valid": false, "nonce": "n-1",
		"error": {"code": "dpop_nonce_required", "message": "a server nonce is required"},
	}})
	d := fixtures.decide(inp)
	d.status == 401
	codes(d) == ["dpop_nonce_required"]
	d.headers == {
		"www-authenticate": `DPoP realm="tokenguard", error="use_dpop_nonce", error_description="a server nonce is required", algs="ES256 ES384 RS256 PS256 EdDSA"`,
		"dpop-nonce": "n-1",
	}
}

test_allow_passes_a_fresh_dpop_nonce_on if {
	inp := fixtures.patched(dpop_user, {"dpop": {"present": true, "valid": true, "jkt": "key-1", "nonce": "n-2"}})
	d := fixtures.decide(inp)
	d.allow
	d.headers == {"dpop-nonce": "n-2"}
}

test_a_nonce_that_could_split_a_header_is_left_out if {
	inp := fixtures.patched(dpop_user, {"dpop": {"present": true, "valid": true, "jkt": "key-1", "nonce": "n\r\nset-cookie: x"}})
	fixtures.decide(inp).headers == {}
}

test_deny_dpop_bound_token_as_bearer_gets_a_dpop_challenge if {
	d := fixtures.decide(fixtures.patched(user, {"token": {"bound": {"method": "dpop", "jkt": "key-1"}}}))
	codes(d) == ["dpop_required"]
	d.headers["www-authenticate"] == `DPoP realm="tokenguard", error="invalid_token", error_description="the DPoP-bound token was presented as a bearer token", algs="ES256 ES384 RS256 PS256 EdDSA"`
}

test_deny_a_bearer_token_of_a_client_that_must_use_dpop_gets_a_dpop_challenge if {
	pdp_data := fixtures.with_data({"clients": {"web": {"sender_constraint": "dpop"}}})
	d := fixtures.decide_with(user, pdp_data)
	codes(d) == ["sender_constraint_required"]
	startswith(d.headers["www-authenticate"], `DPoP realm="tokenguard", error="invalid_token"`)
}

test_allow_dpop_bound_token_with_a_proof_by_its_key if {
	d := fixtures.decide(fixtures.patched(dpop_user, {"dpop": {"present": true, "valid": true, "jkt": "key-1"}}))
	d.allow
	d.headers == {}
}

test_deny_deprecated_password_grant_is_401_invalid_token if {
	d := fixtures.decide(fixtures.with_claims(user, {"gty": "password"}))
	d.status == 401
	codes(d) == ["grant_type_not_allowed"]
	d.grant_type == ""
	d.module == ""
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="grant type \"password\" is deprecated and not allowed"`
}

test_deny_implicit_grant if {
	codes(fixtures.decide(fixtures.with_claims(user, {"gty": "implicit"}))) == ["grant_type_not_allowed"]
}

# --- status precedence, ordering, fail closed ------------------------------

test_status_precedence_400_before_401_before_403 if {
	decide_sender_reasons(user, {r("c", 403), r("b", 401), r("a", 400)}).status == 400
	decide_sender_reasons(user, {r("c", 403), r("b", 401)}).status == 401
	decide_sender_reasons(user, {r("c", 403)}).status == 403
}

test_reasons_are_sorted_by_status_precedence_then_code if {
	d := decide_sender_reasons(user, {r("d", 401), r("b", 403), r("c", 400), r("a", 401), r("e", 500), r("f", 403)})
	codes(d) == ["c", "a", "d", "b", "f", "e"]
}

test_several_failing_guardrails_give_several_reasons if {
	inp := fixtures.with_claims(fixtures.at(user, "POST", "/v1/accounts/42"), {
		"aud": "https://other.example.com",
		"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 7200,
	})
	d := fixtures.decide(inp)
	codes(d) == ["audience_mismatch", "lifetime_exceeded", "scope_insufficient"]
	d.status == 401
	startswith(d.headers["www-authenticate"], `Bearer realm="tokenguard", error="invalid_token", error_description="the token is not meant for`)
}

test_challenge_follows_the_reason_that_decides_the_status if {
	d := decide_sender_reasons(user, {
		{"code": "a_scope", "status": 403, "error": "insufficient_scope", "message": "m"},
		{"code": "z_token", "status": 401, "error": "invalid_token", "message": "bad token"},
	})
	d.status == 401
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="invalid_token", error_description="bad token"`
}

test_deny_insufficient_scope_names_the_required_scopes if {
	d := fixtures.decide(fixtures.with_claims(fixtures.at(user, "PUT", "/v1/accounts/42"), {"scope": "accounts:read"}))
	d.status == 403
	codes(d) == ["scope_insufficient"]
	d.headers["www-authenticate"] == `Bearer realm="tokenguard", error="insufficient_scope", error_description="the token lacks the scope accounts:write", scope="accounts:write"`
}

test_grant_module_reasons_are_applied if {
	d := fixtures.decide(user) with data.tokenguard.grants.authorization_code.reasons as {r("grant_specific", 403)}
	codes(d) == ["grant_specific"]
	d.module == "grants.authorization_code"
	d.upstream_headers == {}
}

test_deny_a_guardrail_listed_without_a_lib_module_is_a_policy_error if {
	d := fixtures.decide(user) with data.tokenguard.grants.authorization_code.guardrails as {"sender", "lifetme"}
	codes(d) == ["policy_error"]
	d.status == 500
	d.reasons[0].message == "guardrail \"lifetme\" is not defined"
}

# main.guardrail_modules names every lib module that defines reasons, and
# only those: a guardrail missing from it could never be applied.
test_guardrail_modules_are_the_lib_modules_with_reasons if {
	with_reasons := {name | some name, pkg in data.tokenguard.lib; is_set(pkg.reasons)} with input as {} with pdp.route as route_reference.route
	data.tokenguard.main.guardrail_modules == with_reasons
}

test_deny_a_helper_module_listed_as_a_guardrail_is_a_policy_error if {
	every helper in ["challenge", "mode", "client", "config"] {
		codes(fixtures.decide(user)) == ["policy_error"] with data.tokenguard.grants.authorization_code.guardrails as {"sender", helper}
	}
}

test_deny_a_grant_module_without_upstream_headers_fails_closed if {
	d := fixtures.decide(user) with data.tokenguard.grants.authorization_code.upstream_headers as "x"
	denied(d)
	codes(d) == ["policy_error"]
}

test_every_grant_type_has_a_module_applying_the_sender_constraint if {
	every g in grant.known {
		"sender" in data.tokenguard.grants[g].guardrails
	}
}

test_every_grant_type_has_a_module_applying_revocation if {
	every g in grant.known {
		"revocation" in data.tokenguard.grants[g].guardrails
	}
}

test_every_grant_type_has_a_module_applying_the_runtime_guardrails if {
	every g in grant.known {
		{"lifetime", "route", "scope", "intent", "network"} - data.tokenguard.grants[g].guardrails == set()
	}
}

# --- modes ---------------------------------------------------------------------

too_long := fixtures.with_claims(user, {"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 7200})

test_monitor_mode_allows_and_warns if {
	d := fixtures.decide_with(too_long, fixtures.with_data({"modes": {"lifetime": "monitor"}}))
	d.allow
	d.status == 200
	d.reasons == []
	d.warnings == [{"code": "lifetime_exceeded", "message": "the token lives 7260s, more than the 3600s allowed"}]
	d.upstream_headers["x-tokenguard-subject"] == "alice"
	d.headers == {}
}

test_enforce_is_the_default_and_the_value_for_anything_but_monitor if {
	every modes in [{}, {"lifetime": "enforce"}, {"lifetime": "Monitor"}, {"lifetime": true}, {"lifetime": null}] {
		codes(fixtures.decide_with(too_long, fixtures.with_data({"modes": modes}))) == ["lifetime_exceeded"]
	}
	codes(fixtures.decide_with(too_long, fixtures.with_data({"modes": "monitor"}))) == ["lifetime_exceeded"]
}

test_warnings_are_reported_on_a_deny_too if {
	inp := fixtures.with_claims(too_long, {"aud": "https://other.example.com"})
	d := fixtures.decide_with(inp, fixtures.with_data({"modes": {"lifetime": "monitor"}}))
	codes(d) == ["audience_mismatch"]
	fixtures.warning_codes(d) == ["lifetime_exceeded"]
}

test_warnings_are_sorted_by_code if {
	inp := fixtures.with_claims(fixtures.at(too_long, "POST", "/v1/accounts/42"), {"aud": "https://other.example.com"})
	pdp_data := fixtures.with_data({"modes": {"lifetime": "monitor", "route": "monitor", "scope": "monitor"}})
	d := fixtures.decide_with(inp, pdp_data)
	d.allow
	fixtures.warning_codes(d) == ["audience_mismatch", "lifetime_exceeded", "scope_insufficient"]
}

test_every_mode_name_can_be_monitored if {
	every name in ["route", "scope", "grant_intent", "network", "fingerprint"] {
		modes := {"modes": {name: "monitor"}}
		d := fixtures.decide_with(mode_case[name].input, object.union(mode_case[name].data, modes))
		d.allow
		fixtures.warning_codes(d) == [mode_case[name].code]
	}
}

mode_case := {
	"route": {"input": fixtures.at(user, "GET", "/v1/unknown"), "data": fixtures.policy_data, "code": "route_unknown"},
	"scope": {"input": fixtures.with_claims(user, {"scope": "openid"}), "data": fixtures.policy_data, "code": "scope_insufficient"},
	"grant_intent": {
		"input": fixtures.with_claims(user, {"authorization_details": [{"type": "payment_initiation"}]}),
		"data": fixtures.policy_data, "code": "grant_intent_mismatch",
	},
	"network": {
		"input": user,
		"data": fixtures.with_data({"clients": {"web": {"allowed_cidrs": ["10.0.0.0/8"]}}}),
		"code": "ip_not_allowed",
	},
	"fingerprint": {
		"input": fixtures.patched(user, {"mock": {"last_seen": fixtures.seen_from("198.51.100.7", "curl/8")}}),
		"data": fixtures.policy_data, "code": "token_replay_suspected",
	},
}

test_sender_modes_are_split_by_constraint if {
	bearer_downgrade := fixtures.patched(user, {"token": {"bound": {"method": "dpop", "jkt": "key-1"}}})
	d := fixtures.decide_with(bearer_downgrade, fixtures.with_data({"modes": {"dpop": "monitor"}}))
	d.allow
	fixtures.warning_codes(d) == ["dpop_required"]
	codes(fixtures.decide_with(bearer_downgrade, fixtures.with_data({"modes": {"mtls": "monitor"}}))) == ["dpop_required"]
	no_cert := fixtures.patched(user, {"token": {"bound": {"method": "mtls", "x5t#S256": "c"}}})
	fixtures.warning_codes(fixtures.decide_with(no_cert, fixtures.with_data({"modes": {"mtls": "monitor"}}))) == ["mtls_binding_mismatch"]
	required := fixtures.with_data({"clients": {"web": {"sender_constraint": "mtls", "modes": {"sender_constraint": "monitor"}}}})
	fixtures.warning_codes(fixtures.decide_with(user, required)) == ["sender_constraint_required"]
}

test_delegation_can_be_monitored if {
	deep := fixtures.with_claims(fixtures.input_for(fixtures.exchange_claims), {"act": {"sub": "a", "act": {"sub": "b", "act": {"sub": "c"}}}})
	d := fixtures.decide_with(deep, fixtures.with_data({"modes": {"delegation": "monitor"}}))
	d.allow
	fixtures.warning_codes(d) == ["delegation_too_deep"]
}

# Token validity, revocation and deprecated grant types are always enforced.
test_never_monitorable_guardrails_deny_whatever_the_modes if {
	every name in ["token", "grant", "revocation", "token_expired", "subject_revoked", "grant_type_not_allowed"] {
		pdp_data := fixtures.with_data({
			"modes": {name: "monitor"},
			"clients": {"web": {"modes": {name: "monitor"}}},
		})
		codes(fixtures.decide_with(failed("token_expired", "m"), pdp_data)) == ["token_expired"]
		revoked := fixtures.patched(user, {"mock": {"revocation": {"revoked": true, "kind": "subject", "at": fixtures.now}}})
		codes(fixtures.decide_with(revoked, pdp_data)) == ["subject_revoked"]
		codes(fixtures.decide_with(fixtures.with_claims(user, {"gty": "password"}), pdp_data)) == ["grant_type_not_allowed"]
	}
}

test_revocation_stays_enforced_even_if_it_declared_modes if {
	revoked := fixtures.patched(user, {"mock": {"revocation": {"revoked": true, "kind": "jti"}}})
	d := fixtures.decide_with(revoked, fixtures.with_data({"modes": {"lifetime": "monitor"}}))
		with data.tokenguard.lib.revocation.modes as {"token_revoked": "lifetime"}
	codes(d) == ["token_revoked"]
}

test_policy_errors_are_never_monitored if {
	broken := fixtures.with_data({"modes": {"lifetime": "monitor"}, "lifetimes": {"default": {"max_age": "soon"}}})
	d := fixtures.decide_with(user, broken)
	codes(d) == ["policy_error"]
	d.warnings == []
}

test_a_client_override_wins_over_the_global_mode if {
	monitored_for_web := fixtures.with_data({"clients": {"web": {"modes": {"lifetime": "monitor"}}}})
	fixtures.decide_with(too_long, monitored_for_web).allow
	other_client := fixtures.with_claims(too_long, {"client_id": "mobile"})
	codes(fixtures.decide_with(other_client, monitored_for_web)) == ["lifetime_exceeded"]
	enforced_for_web := fixtures.with_data({"modes": {"lifetime": "monitor"}, "clients": {"web": {"modes": {"lifetime": "enforce"}}}})
	codes(fixtures.decide_with(too_long, enforced_for_web)) == ["lifetime_exceeded"]
	fixtures.decide_with(other_client, enforced_for_web).allow
}

test_a_broken_client_override_enforces if {
	broken := fixtures.with_data({"modes": {"lifetime": "monitor"}, "clients": {"web": {"modes": {"lifetime": "off"}}}})
	codes(fixtures.decide_with(too_long, broken)) == ["lifetime_exceeded"]
}

# --- the token endpoint --------------------------------------------------------

refresh := {
	"present": true, "valid": true, "hash": "rh", "issuer": "https://as.example.com",
	"subject": "alice", "session_id": "s-1", "client_id": "web", "reused": false,
	"family": {"id": "f", "created": fixtures.now - 3600000000000, "rotations": 3},
}

at_token_endpoint(te) := {
	"now": fixtures.now,
	"environment": "prod",
	"context": {},
	"request": {
		"method": "POST", "url": "https://as.example.com/token", "scheme": "https",
		"host": "as.example.com", "port": 443, "path": "/token", "query": {},
		"headers": {"content-type": ["application/x-www-form-urlencoded"]},
	},
	"token": {"present": false, "valid": false, "claims": {}, "bound": {"method": "none"}},
	"dpop": {"present": false, "valid": false},
	"token_endpoint": te,
}

test_token_endpoint_request_goes_to_the_token_endpoint_module if {
	fixtures.decide(at_token_endpoint({"grant_type": "refresh_token", "refresh": refresh})) == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"warnings": [],
		"headers": {},
		"upstream_headers": {},
		"grant_type": "refresh_token",
		"module": "token_endpoint",
		"effects": [],
		"valid_until": (fixtures.now - 3600000000000) + 2592000000000001,
	}
}

test_token_endpoint_other_grant_types_pass if {
	every gt in ["authorization_code", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "jwt-bearer"] {
		d := fixtures.decide(at_token_endpoint({"grant_type": gt}))
		d.allow
		d.module == "token_endpoint"
	}
}

test_token_endpoint_reuse_is_400_invalid_grant_and_revokes_the_session if {
	d := fixtures.decide(at_token_endpoint({"grant_type": "refresh_token", "refresh": object.union(refresh, {"reused": true})}))
	d == {
		"allow": false,
		"status": 400,
		"reasons": [{
			"code": "refresh_token_reused", "status": 400, "error": "invalid_grant",
			"message": "the refresh token has already been used",
		}],
		"warnings": [],
		"headers": {},
		"upstream_headers": {},
		"grant_type": "refresh_token",
		"module": "token_endpoint",
		"effects": [{"revoke": {"kind": "session", "iss": "https://as.example.com", "value": "s-1", "reason": "refresh_token_reused"}}],
		"valid_until": (fixtures.now - 3600000000000) + 2592000000000001,
	}
}

test_token_endpoint_reuse_in_monitor_mode_warns_and_revokes_nothing if {
	reused := at_token_endpoint({"grant_type": "refresh_token", "refresh": object.union(refresh, {"reused": true})})
	d := fixtures.decide_with(reused, fixtures.with_data({"modes": {"refresh": "monitor"}}))
	d.allow
	fixtures.warning_codes(d) == ["refresh_token_reused"]
	d.effects == []
	e := fixtures.decide_with(reused, fixtures.with_data({"clients": {"web": {"modes": {"refresh": "monitor"}}}}))
	e.allow
	e.effects == []
}

test_token_endpoint_invalid_refresh_token_is_never_monitored if {
	invalid := at_token_endpoint({"grant_type": "refresh_token", "refresh": {
		"present": true, "valid": false, "reused": false,
		"error": {"code": "token_signature_invalid", "message": "bad signature"},
	}})
	d := fixtures.decide_with(invalid, fixtures.with_data({"modes": {"refresh": "monitor"}}))
	codes(d) == ["refresh_token_invalid"]
	d.status == 400
	d.headers == {}
}

test_token_endpoint_input_on_another_request_is_a_policy_error if {
	elsewhere := fixtures.patched(at_token_endpoint({"grant_type": "client_credentials"}), {"request": {"url": "https://api.example.com/v1/accounts/42"}})
	d := fixtures.decide(elsewhere)
	codes(d) == ["policy_error"]
	d.status == 500
	not d.allow
	get := fixtures.patched(at_token_endpoint({"grant_type": "client_credentials"}), {"request": {"method": "GET"}})
	codes(fixtures.decide(get)) == ["policy_error"]
	codes(fixtures.decide_with(at_token_endpoint({"grant_type": "client_credentials"}), {})) == ["policy_error"]
}

test_token_endpoint_url_is_compared_as_go_normalises_it if {
	pdp_data := fixtures.with_data({"token_endpoint": {"url": "HTTPS://AS.Example.com:443/token"}})
	fixtures.decide_with(at_token_endpoint({"grant_type": "client_credentials"}), pdp_data).allow
	other_path := fixtures.with_data({"token_endpoint": {"url": "https://as.example.com/Token"}})
	codes(fixtures.decide_with(at_token_endpoint({"grant_type": "client_credentials"}), other_path)) == ["policy_error"]
}

test_token_endpoint_skips_the_access_token_checks if {
	d := fixtures.decide(at_token_endpoint({"grant_type": "client_credentials"}))
	not "token_missing" in codes(d)
	d.allow
}

# --- valid_until -------------------------------------------------------------

test_valid_until_is_the_earliest_instant_any_module_names if {
	d := fixtures.decide(user) with data.tokenguard.lib.network.valid_until as fixtures.now + 5
	d.valid_until == fixtures.now + 5
}

test_valid_until_counts_grant_modules_too if {
	d := fixtures.decide(user) with data.tokenguard.grants.authorization_code.valid_until as fixtures.now + 7
	d.valid_until == fixtures.now + 7
}

test_valid_until_is_null_without_a_token if {
	fixtures.decide({}).valid_until == null
}

# --- path parameters -----------------------------------------------------------

test_deny_path_parameters_is_400_request_path_invalid if {
	d := fixtures.decide(fixtures.at(user, "GET", "/v1/accounts/42;jsessionid=x"))
	d.allow == false
	d.status == 400
	codes(d) == ["request_path_invalid"]
}

test_deny_path_parameters_without_a_token_is_400_first if {
	d := fixtures.decide(fixtures.at({}, "GET", "/v1/accounts/42;x"))
	d.status == 400
	codes(d)[0] == "request_path_invalid"
}

test_allow_path_parameters_on_a_route_that_accepts_them if {
	routes := [object.union(r, {"path_parameters": true}) | some r in fixtures.policy_data.routes]
	fixtures.decide_with(fixtures.at(user, "GET", "/v1/accounts/42;v=1"), fixtures.with_data({"routes": routes})).allow
}

test_path_parameters_never_monitored if {
	monitor_all := fixtures.with_data({"modes": {"route": "monitor"}})
	d := fixtures.decide_with(fixtures.at(user, "GET", "/v1/accounts/42;x"), monitor_all)
	d.allow == false
	codes(d) == ["request_path_invalid"]
}

# --- explanation -------------------------------------------------------------

explain_with(inp, pdp_data) := x if {
	x := data.tokenguard.main.explanation with input as inp
		with data.pdp as pdp_data
		with pdp.revocation as fixtures.revocation_mock
		with pdp.last_seen as fixtures.last_seen_mock
		with pdp.route as route_reference.route
}

entry(x, g) := [e | some e in x; e.guardrail == g]

test_explanation_of_an_over_long_token_names_the_lifetime_guardrail_with_both_values if {
	long := fixtures.with_claims(user, {"exp": fixtures.now_s + 7200})
	x := explain_with(long, fixtures.policy_data)
	[e] := entry(x, "lifetime")
	e.code == "lifetime_exceeded"
	e.outcome == "deny"
	e.mode == "enforce"
	e.values.lifetime_s > e.values.max_lifetime_s
	e.values.max_lifetime_s > 0

	# every other guardrail that ran passed
	every other in [o | some o in x; o.guardrail != "lifetime"] {
		other.outcome == "pass"
	}
	count(x) > 5
}

test_explanation_of_a_monitored_guardrail_is_a_warning if {
	long := fixtures.with_claims(user, {"exp": fixtures.now_s + 7200})
	x := explain_with(long, object.union(fixtures.policy_data, {"modes": {"lifetime": "monitor"}}))
	[e] := entry(x, "lifetime")
	e.outcome == "warn"
	e.mode == "monitor"
}

test_explanation_lists_each_guardrail_that_ran_once_sorted if {
	x := explain_with(user, fixtures.policy_data)
	names := [e.guardrail | some e in x]
	names == sort(names)
	count(names) == count({n | some n in names})
	"token" in names
	"lifetime" in names
	every e in x {
		e.outcome == "pass"
		is_object(e.values)
	}
}

test_explanation_of_a_missing_token_denies_in_the_token_guardrail if {
	x := explain_with(object.remove(user, ["token"]), fixtures.policy_data)
	[e] := entry(x, "token")
	e.outcome == "deny"
	e.code == "token_missing"
}
