package tokenguard.lib.sender_test

import data.tokenguard.lib.sender

request(scheme, bound) := {
	"token": {
		"present": true,
		"scheme": scheme,
		"valid": true,
		"claims": {"sub": "alice"},
		"bound": bound,
	},
	"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42"},
}

dpop_bound := {"method": "dpop", "jkt": "key-1"}

proof(jkt) := {"present": true, "valid": true, "jkt": jkt}

mtls_bound := {"method": "mtls", "x5t#S256": "cert-1"}

with_cert(r, thumbprint) := object.union(r, {"request": {"client_cert": {"x5t#S256": thumbprint}}})

codes(reasons) := {r.code | some r in reasons}

test_unbound_bearer_token_passes if {
	count(sender.reasons) == 0 with input as request("bearer", {"method": "none"})
}

test_absent_or_null_binding_means_unbound if {
	count(sender.reasons) == 0 with input as object.union(request("bearer", {}), {"token": {"bound": null}})
	count(sender.reasons) == 0 with input as {"token": {"present": true, "scheme": "bearer", "valid": true, "claims": {}}}
}

test_dpop_bound_token_with_a_proof_by_its_key_passes if {
	count(sender.reasons) == 0 with input as object.union(request("dpop", dpop_bound), {"dpop": proof("key-1")})
}

test_deny_dpop_bound_token_as_bearer_is_401_invalid_token if {
	sender.reasons == {{
		"code": "dpop_bound_token_as_bearer",
		"status": 401,
		"error": "invalid_token",
		"message": "the DPoP-bound token was presented as a bearer token",
	}} with input as object.union(request("bearer", dpop_bound), {"dpop": proof("key-1")})
}

test_deny_dpop_bound_token_with_an_invalid_proof_is_invalid_dpop_proof if {
	sender.reasons == {{
		"code": "dpop_proof_invalid",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "htu does not match the request",
	}} with input as object.union(request("dpop", dpop_bound), {"dpop": {
		"present": true,
		"valid": false,
		"error": {"code": "dpop_htu_mismatch", "message": "htu does not match the request"},
	}})
}

test_deny_dpop_bound_token_without_a_proof if {
	sender.reasons == {{
		"code": "dpop_proof_invalid",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "no valid DPoP proof was presented",
	}} with input as request("dpop", dpop_bound)
	codes(sender.reasons) == {"dpop_proof_invalid"} with input as object.union(request("dpop", dpop_bound), {"dpop": {"present": false}})
	codes(sender.reasons) == {"dpop_proof_invalid"} with input as object.union(request("dpop", dpop_bound), {"dpop": {"valid": "true", "jkt": "key-1"}})
	codes(sender.reasons) == {"dpop_proof_invalid"} with input as object.union(request("dpop", dpop_bound), {"dpop": "garbage"})
}

test_deny_dpop_proof_by_another_key_is_dpop_key_mismatch if {
	sender.reasons == {{
		"code": "dpop_key_mismatch",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "the DPoP proof key is not the key the token is bound to",
	}} with input as object.union(request("dpop", dpop_bound), {"dpop": proof("key-2")})
}

test_deny_dpop_binding_without_a_thumbprint_is_a_key_mismatch if {
	codes(sender.reasons) == {"dpop_key_mismatch"} with input as object.union(request("dpop", {"method": "dpop"}), {"dpop": proof("key-1")})
	codes(sender.reasons) == {"dpop_key_mismatch"} with input as object.union(request("dpop", {"method": "dpop", "jkt": ""}), {"dpop": {"present": true, "valid": true, "jkt": ""}})
	codes(sender.reasons) == {"dpop_key_mismatch"} with input as object.union(request("dpop", dpop_bound), {"dpop": {"present": true, "valid": true}})
}

test_deny_dpop_scheme_with_an_unbound_token if {
	sender.reasons == {{
		"code": "dpop_proof_invalid",
		"status": 401,
		"error": "invalid_dpop_proof",
		"message": "the DPoP scheme was used with a token that is not DPoP-bound",
	}} with input as object.union(request("dpop", {"method": "none"}), {"dpop": proof("key-1")})
}

test_mtls_bound_token_with_its_certificate_passes if {
	count(sender.reasons) == 0 with input as with_cert(request("bearer", mtls_bound), "cert-1")
}

test_deny_mtls_bound_token_without_a_certificate_is_401_invalid_token if {
	sender.reasons == {{
		"code": "mtls_certificate_missing",
		"status": 401,
		"error": "invalid_token",
		"message": "the certificate-bound token was presented without a client certificate",
	}} with input as request("bearer", mtls_bound)
	codes(sender.reasons) == {"mtls_certificate_missing"} with input as with_cert(request("bearer", mtls_bound), "")
	codes(sender.reasons) == {"mtls_certificate_missing"} with input as object.union(request("bearer", mtls_bound), {"request": {"client_cert": "cert-1"}})
}

test_deny_mtls_bound_token_with_another_certificate_is_401_invalid_token if {
	sender.reasons == {{
		"code": "mtls_binding_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the client certificate is not the one the token is bound to",
	}} with input as with_cert(request("bearer", mtls_bound), "cert-2")
	codes(sender.reasons) == {"mtls_binding_mismatch"} with input as with_cert(request("bearer", {"method": "mtls"}), "cert-1")
}

test_deny_mtls_bound_token_with_dpop_scheme if {
	codes(sender.reasons) == {"dpop_proof_invalid"} with input as object.union(
		with_cert(request("dpop", mtls_bound), "cert-1"),
		{"dpop": proof("key-1")},
	)
}

test_deny_unknown_or_malformed_binding if {
	every bound in [{"method": "hok"}, {"method": 1}, "dpop", false, []] {
		codes(sender.reasons) == {"token_binding_unsupported"} with input as request("bearer", bound)
	}
}

test_no_sender_reasons_for_a_token_that_failed_verification if {
	count(sender.reasons) == 0 with input as {"token": {"present": true, "scheme": "bearer", "valid": false, "bound": dpop_bound}}
}
