package tokenguard.lib.sender_test

import data.tokenguard.lib.sender

request(scheme, bound) := {
	"token": {
		"present": true,
		"scheme": scheme,
		"valid": true,
		"claims": {"sub": "alice", "client_id": "web"},
		"bound": bound,
	},
	"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42"},
}

dpop_bound := {"method": "dpop", "jkt": "key-1"}

proof(jkt) := {"present": true, "valid": true, "jkt": jkt}

failed_proof(code, message) := {"present": true, "valid": false, "error": {"code": code, "message": message}}

with_proof(r, p) := object.union(r, {"dpop": p})

mtls_bound := {"method": "mtls", "x5t#S256": "cert-1"}

with_cert(r, thumbprint) := object.union(r, {"request": {"client_cert": {"x5t#S256": thumbprint}}})

codes(reasons) := {r.code | some r in reasons}

test_every_code_but_binding_unsupported_has_a_mode if {
	sender.modes == {
		"dpop_required": "dpop",
		"dpop_proof_invalid": "dpop",
		"dpop_replayed": "dpop",
		"dpop_nonce_required": "dpop",
		"dpop_binding_mismatch": "dpop",
		"mtls_binding_mismatch": "mtls",
		"sender_constraint_required": "sender_constraint",
	}
}

test_unbound_bearer_token_passes if {
	count(sender.reasons) == 0 with input as request("bearer", {"method": "none"}) with data.pdp as {}
}

test_a_dpop_header_next_to_a_bearer_token_is_ignored if {
	count(sender.reasons) == 0 with input as with_proof(request("bearer", {"method": "none"}), failed_proof("dpop_proof_invalid", "m")) with data.pdp as {}
}

test_absent_or_null_binding_means_unbound if {
	count(sender.reasons) == 0 with input as object.union(request("bearer", {}), {"token": {"bound": null}}) with data.pdp as {}
	count(sender.reasons) == 0 with input as {"token": {"present": true, "scheme": "bearer", "valid": true, "claims": {}}} with data.pdp as {}
}

test_dpop_bound_token_with_a_proof_by_its_key_passes if {
	count(sender.reasons) == 0 with input as with_proof(request("dpop", dpop_bound), proof("key-1")) with data.pdp as {}
}

# D11: a DPoP-bound token presented with Bearer is a downgrade.
test_deny_dpop_bound_token_as_bearer_is_dpop_required if {
	sender.reasons == {{
		"code": "dpop_required",
		"status": 401,
		"error": "invalid_token",
		"message": "the DPoP-bound token was presented as a bearer token",
	}} with input as with_proof(request("bearer", dpop_bound), proof("key-1")) with data.pdp as {}
}

test_deny_dpop_scheme_without_a_proof_is_dpop_required if {
	sender.reasons == {{
		"code": "dpop_required",
		"status": 401,
		"error": "invalid_token",
		"message": "no DPoP proof was presented",
	}} with input as request("dpop", dpop_bound) with data.pdp as {}
	codes(sender.reasons) == {"dpop_required"} with input as with_proof(request("dpop", dpop_bound), {"present": false, "valid": false}) with data.pdp as {}
	codes(sender.reasons) == {"dpop_required"} with input as with_proof(request("dpop", dpop_bound), {"valid": "true", "jkt": "key-1"}) with data.pdp as {}
	codes(sender.reasons) == {"dpop_required"} with input as with_proof(request("dpop", dpop_bound), "garbage") with data.pdp as {}
	codes(sender.reasons) == {"dpop_required"} with input as request("dpop", {"method": "none"}) with data.pdp as {}
}

test_deny_invalid_proof_is_dpop_proof_invalid if {
	sender.reasons == {{
		"code": "dpop_proof_invalid",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "htu does not match the request",
	}} with input as with_proof(request("dpop", dpop_bound), failed_proof("dpop_proof_invalid", "htu does not match the request")) with data.pdp as {}
}

test_deny_unknown_proof_error_codes_are_dpop_proof_invalid if {
	every code in ["dpop_htu_mismatch", "", 7, null] {
		sender.reasons == {{
			"code": "dpop_proof_invalid",
			"status": 401,
			"error": "invalid_dpop_proof",
			"message": "m",
		}} with input as with_proof(request("dpop", dpop_bound), failed_proof(code, "m")) with data.pdp as {}
	}
	sender.reasons == {{
		"code": "dpop_proof_invalid",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "the DPoP proof is not valid",
	}} with input as with_proof(request("dpop", dpop_bound), {"present": true, "valid": false}) with data.pdp as {}
}

test_deny_replayed_proof_is_dpop_replayed if {
	sender.reasons == {{
		"code": "dpop_replayed",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "the proof was used before",
	}} with input as with_proof(request("dpop", dpop_bound), failed_proof("dpop_replayed", "the proof was used before")) with data.pdp as {}
}

# D12: the challenge error is use_dpop_nonce (main adds the dpop-nonce header).
test_deny_proof_without_the_server_nonce_is_dpop_nonce_required if {
	sender.reasons == {{
		"code": "dpop_nonce_required",
		"status": 401,
		"error": "use_dpop_nonce",
		"message": "nonce required",
	}} with input as with_proof(request("dpop", dpop_bound), failed_proof("dpop_nonce_required", "nonce required")) with data.pdp as {}
}

# D10: the proof key must be the token's cnf.jkt.
test_deny_proof_by_another_key_is_dpop_binding_mismatch if {
	sender.reasons == {{
		"code": "dpop_binding_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the DPoP proof key is not the key the token is bound to",
	}} with input as with_proof(request("dpop", dpop_bound), proof("key-2")) with data.pdp as {}
}

test_deny_dpop_binding_without_a_thumbprint_is_a_binding_mismatch if {
	codes(sender.reasons) == {"dpop_binding_mismatch"} with input as with_proof(request("dpop", {"method": "dpop"}), proof("key-1")) with data.pdp as {}
	codes(sender.reasons) == {"dpop_binding_mismatch"} with input as with_proof(request("dpop", {"method": "dpop", "jkt": ""}), {"present": true, "valid": true, "jkt": ""}) with data.pdp as {}
	codes(sender.reasons) == {"dpop_binding_mismatch"} with input as with_proof(request("dpop", dpop_bound), {"present": true, "valid": true}) with data.pdp as {}
}

test_deny_dpop_scheme_with_an_unbound_token_is_a_binding_mismatch if {
	sender.reasons == {{
		"code": "dpop_binding_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the DPoP scheme was used with a token that is not DPoP-bound",
	}} with input as with_proof(request("dpop", {"method": "none"}), proof("key-1")) with data.pdp as {}
}

test_mtls_bound_token_with_its_certificate_passes if {
	count(sender.reasons) == 0 with input as with_cert(request("bearer", mtls_bound), "cert-1") with data.pdp as {}
}

test_deny_mtls_bound_token_without_a_certificate_is_mtls_binding_mismatch if {
	sender.reasons == {{
		"code": "mtls_binding_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the certificate-bound token was presented without a client certificate",
	}} with input as request("bearer", mtls_bound) with data.pdp as {}
	codes(sender.reasons) == {"mtls_binding_mismatch"} with input as with_cert(request("bearer", mtls_bound), "") with data.pdp as {}
	codes(sender.reasons) == {"mtls_binding_mismatch"} with input as object.union(request("bearer", mtls_bound), {"request": {"client_cert": "cert-1"}}) with data.pdp as {}
}

test_deny_mtls_bound_token_with_another_certificate_is_mtls_binding_mismatch if {
	sender.reasons == {{
		"code": "mtls_binding_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the client certificate is not the one the token is bound to",
	}} with input as with_cert(request("bearer", mtls_bound), "cert-2") with data.pdp as {}
	codes(sender.reasons) == {"mtls_binding_mismatch"} with input as with_cert(request("bearer", {"method": "mtls"}), "cert-1") with data.pdp as {}
}

test_deny_mtls_bound_token_with_dpop_scheme if {
	codes(sender.reasons) == {"dpop_binding_mismatch"} with input as with_proof(with_cert(request("dpop", mtls_bound), "cert-1"), proof("key-1")) with data.pdp as {}
}

test_deny_unknown_or_malformed_binding if {
	every bound in [{"method": "hok"}, {"method": 1}, "dpop", false, []] {
		codes(sender.reasons) == {"token_binding_unsupported"} with input as request("bearer", bound) with data.pdp as {}
	}
}

test_no_sender_reasons_for_a_token_that_failed_verification if {
	count(sender.reasons) == 0 with input as {"token": {"present": true, "scheme": "bearer", "valid": false, "bound": dpop_bound}} with data.pdp as {}
}

# --- a client that must use a sender constraint -----------------------------

must_use(constraint) := {"clients": {"web": {"sender_constraint": constraint}}}

test_deny_a_plain_bearer_token_of_a_client_that_must_use_dpop if {
	sender.reasons == {{
		"code": "sender_constraint_required",
		"status": 401,
		"error": "invalid_token",
		"message": "client \"web\" must present a DPoP-bound token",
	}} with input as request("bearer", {"method": "none"}) with data.pdp as must_use("dpop")
}

test_deny_a_token_bound_the_other_way if {
	inp := with_cert(request("bearer", mtls_bound), "cert-1")
	codes(sender.reasons) == {"sender_constraint_required"} with input as inp with data.pdp as must_use("dpop")
	codes(sender.reasons) == {"sender_constraint_required"} with input as request("bearer", {"method": "none"}) with data.pdp as must_use("mtls")
}

test_a_client_that_must_use_a_constraint_passes_with_it if {
	count(sender.reasons) == 0 with input as with_proof(request("dpop", dpop_bound), proof("key-1")) with data.pdp as must_use("dpop")
	count(sender.reasons) == 0 with input as with_cert(request("bearer", mtls_bound), "cert-1") with data.pdp as must_use("mtls")
	count(sender.reasons) == 0 with input as request("bearer", {"method": "none"}) with data.pdp as must_use(null)
}

test_other_clients_are_not_constrained if {
	inp := object.union(request("bearer", {"method": "none"}), {"token": {"claims": {"client_id": "mobile"}}})
	count(sender.reasons) == 0 with input as inp with data.pdp as must_use("dpop")
}

test_deny_a_malformed_sender_constraint_setting_as_a_policy_error if {
	every value in ["DPoP", "x509", true, ["dpop"]] {
		codes(sender.reasons) == {"policy_error"} with input as request("bearer", {"method": "none"}) with data.pdp as must_use(value)
	}
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_binding_and_what_the_proof_showed if {
	sender.explain == {"bound": "dpop", "required": "", "proof_present": true, "proof_valid": true, "key_matches": true} with input as with_proof(request("dpop", dpop_bound), proof("key-1")) with data.pdp as {}
	sender.explain == {"bound": "dpop", "required": "", "proof_present": true, "proof_valid": false, "proof_error": "dpop_replayed"} with input as with_proof(request("dpop", dpop_bound), failed_proof("dpop_replayed", "used")) with data.pdp as {}
}

# --- messages --------------------------------------------------------------

# message(bound): a message with a bearer token bound as bound; a message has
# no request, no DPoP proof and no client certificate.
message(bound) := {
	"token": {
		"present": true,
		"scheme": "bearer",
		"valid": true,
		"claims": {"sub": "alice", "client_id": "web"},
		"bound": bound,
	},
	"message": {"broker": "nats", "operation": "publish", "destination": "orders.created"},
}

test_an_unbound_token_passes_for_a_message if {
	count(sender.reasons) == 0 with input as message({"method": "none"}) with data.pdp as {}
}

test_deny_a_bound_token_for_a_message_whatever_its_binding if {
	sender.reasons == {{
		"code": "sender_constraint_required",
		"status": 401,
		"error": "invalid_token",
		"message": "a DPoP-bound token cannot be used for a message: there is no request to bind it to",
	}} with input as message(dpop_bound) with data.pdp as {}
	codes(sender.reasons) == {"sender_constraint_required"} with input as message(mtls_bound) with data.pdp as {}
	codes(sender.reasons) == {"sender_constraint_required"} with input as object.union(message(dpop_bound), {"dpop": proof("key-1")}) with data.pdp as {}
}

test_deny_a_client_that_must_use_a_sender_constraint_for_a_message if {
	every constraint in ["dpop", "mtls"] {
		sender.reasons == {{
			"code": "sender_constraint_required",
			"status": 401,
			"error": "invalid_token",
			"message": sprintf("client \"web\" must use %s, which a message cannot carry", [sender.constraint_names[constraint]]),
		}} with input as message({"method": "none"}) with data.pdp as {"clients": {"web": {"sender_constraint": constraint}}}
	}
}

test_a_bound_token_of_a_client_that_must_bind_is_one_reason_for_a_message if {
	reasons := sender.reasons with input as message(dpop_bound) with data.pdp as {"clients": {"web": {"sender_constraint": "dpop"}}}
	count(reasons) == 1
	codes(reasons) == {"sender_constraint_required"}
}

test_a_message_is_monitored_under_the_sender_constraint_mode if {
	sender.modes.sender_constraint_required == "sender_constraint"
}
