package tokenguard.lib.challenge_test

import data.tokenguard.lib.challenge

bearer := {"token": {"present": true, "scheme": "bearer", "bound": {"method": "none"}}}

dpop := {"token": {"present": true, "scheme": "dpop", "bound": {"method": "dpop", "jkt": "k"}}}

algs := `algs="ES256 ES384 RS256 PS256 EdDSA"`

test_missing_token_challenge_names_only_the_realm if {
	challenge.header({"code": "token_missing", "status": 401, "message": "m"}) == `Bearer realm="tokenguard"` with input as {} with data.pdp as {}
}

test_invalid_token_challenge if {
	r := {"code": "token_expired", "status": 401, "error": "invalid_token", "message": "token expired 2026-11-27T10:00:00Z"}
	challenge.header(r) == `Bearer realm="tokenguard", error="invalid_token", error_description="token expired 2026-11-27T10:00:00Z"` with input as bearer with data.pdp as {}
}

test_invalid_request_challenge if {
	r := {"code": "request_invalid", "status": 400, "error": "invalid_request", "message": "two Authorization headers"}
	challenge.header(r) == `Bearer realm="tokenguard", error="invalid_request", error_description="two Authorization headers"` with input as bearer with data.pdp as {}
}

test_insufficient_scope_challenge_names_the_required_scopes if {
	r := {"code": "scope_missing", "status": 403, "error": "insufficient_scope", "message": "needs write", "scope": ["accounts:write", "accounts:read"]}
	challenge.header(r) == `Bearer realm="tokenguard", error="insufficient_scope", error_description="needs write", scope="accounts:write accounts:read"` with input as bearer with data.pdp as {}
	challenge.header(object.union(r, {"scope": "accounts:write"})) == `Bearer realm="tokenguard", error="insufficient_scope", error_description="needs write", scope="accounts:write"` with input as bearer with data.pdp as {}
}

test_dpop_scheme_challenge_carries_algs if {
	r := {"code": "dpop_proof_invalid", "status": 401, "error": "invalid_dpop_proof", "message": "bad proof"}
	challenge.header(r) == concat("", [`DPoP realm="tokenguard", error="invalid_dpop_proof", error_description="bad proof", `, algs]) with input as dpop with data.pdp as {}
}

test_dpop_bound_token_presented_as_bearer_gets_a_dpop_challenge if {
	r := {"code": "dpop_required", "status": 401, "error": "invalid_token", "message": "m"}
	inp := {"token": {"present": true, "scheme": "bearer", "bound": {"method": "dpop", "jkt": "k"}}}
	challenge.header(r) == concat("", [`DPoP realm="tokenguard", error="invalid_token", error_description="m", `, algs]) with input as inp with data.pdp as {}
}

test_quotes_and_backslashes_in_descriptions_are_escaped if {
	r := {"code": "token_malformed", "status": 401, "error": "invalid_token", "message": `bad "kid" \x`}
	challenge.header(r) == `Bearer realm="tokenguard", error="invalid_token", error_description="bad \"kid\" \\x"` with input as bearer with data.pdp as {}
}

test_control_and_non_ascii_characters_never_reach_the_header if {
	r := {"code": "issuer_untrusted", "status": 401, "error": "invalid_token", "message": "iss\r\nset-cookie: a=b é"}
	challenge.header(r) == `Bearer realm="tokenguard", error="invalid_token", error_description="iss??set-cookie: a=b ?"` with input as bearer with data.pdp as {}
}

test_realm_and_algs_come_from_data if {
	r := {"code": "dpop_proof_invalid", "status": 401, "error": "invalid_dpop_proof", "message": "m"}
	challenge.header(r) == `DPoP realm="api \"x\"", error="invalid_dpop_proof", error_description="m", algs="ES256 EdDSA"` with input as dpop with data.pdp as {}
		with data.pdp as {"realm": `api "x"`, "dpop": {"algs": ["ES256", "EdDSA"]}}
}

test_empty_algs_setting_leaves_algs_out if {
	r := {"code": "dpop_proof_invalid", "status": 401, "error": "invalid_dpop_proof", "message": "m"}
	challenge.header(r) == `DPoP realm="tokenguard", error="invalid_dpop_proof", error_description="m"` with input as dpop with data.pdp as {}
		with data.pdp as {"dpop": {"algs": []}}
}

test_defaults_with_empty_data if {
	challenge.realm == "tokenguard" with data.pdp as {}
	challenge.algs == ["ES256", "ES384", "RS256", "PS256", "EdDSA"] with data.pdp as {}
}

test_a_client_that_must_use_dpop_gets_a_dpop_challenge if {
	r := {"code": "sender_constraint_required", "status": 401, "error": "invalid_token", "message": "m"}
	inp := {"token": {"present": true, "valid": true, "scheme": "bearer", "claims": {"client_id": "job"}, "bound": {"method": "none"}}}
	challenge.header(r) == concat("", [`DPoP realm="tokenguard", error="invalid_token", error_description="m", `, algs]) with input as inp with data.pdp as {}
		with data.pdp as {"clients": {"job": {"sender_constraint": "dpop"}}}
	challenge.header(r) == `Bearer realm="tokenguard", error="invalid_token", error_description="m"` with input as inp with data.pdp as {}
		with data.pdp as {"clients": {"job": {"sender_constraint": "mtls"}}}
}

test_nonce_challenge_is_use_dpop_nonce if {
	r := {"code": "dpop_nonce_required", "status": 401, "error": "use_dpop_nonce", "message": "nonce required"}
	challenge.header(r) == concat("", [`DPoP realm="tokenguard", error="use_dpop_nonce", error_description="nonce required", `, algs]) with input as dpop with data.pdp as {}
}
