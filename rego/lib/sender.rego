# Guardrail: sender constraint. A token bound to a key (DPoP, RFC 9449) or to
# a client certificate (mTLS, RFC 8705) is only accepted from its holder.
# Go verifies the DPoP proof and reports it in input.dpop; absent means no
# proof was verified.
package tokenguard.lib.sender

import data.tokenguard.lib.reason
import data.tokenguard.lib.token

methods := {"dpop", "mtls", "none"}

# bound: the token's binding from its cnf claim; absent or null means
# unbound. Anything but an object with a known method is refused.
default bound := {}

bound := input.token.bound if input.token.bound != null

default method := ""

method := object.get(bound, "method", "none") if is_object(bound)

default proof_valid := false

proof_valid if input.dpop.valid == true

default proof_error := "no valid DPoP proof was presented"

proof_error := input.dpop.error.message if {
	not proof_valid
	is_string(input.dpop.error.message)
	input.dpop.error.message != ""
}

# The proof was made with the key the token is bound to.
key_matches if {
	is_string(bound.jkt)
	bound.jkt != ""
	input.dpop.jkt == bound.jkt
}

# The client certificate the gateway vouches for.
certificate := input.request.client_cert["x5t#S256"] if {
	is_string(input.request.client_cert["x5t#S256"])
	input.request.client_cert["x5t#S256"] != ""
}

certificate_matches if {
	is_string(bound["x5t#S256"])
	certificate == bound["x5t#S256"]
}

# --- reasons ---------------------------------------------------------------

reasons contains reason.new("token_binding_unsupported", 401, msg) if {
	token.ok
	not method in methods
	msg := "the token is bound by an unsupported method"
}

# D11: a DPoP-bound token used as a bearer token is a downgrade.
reasons contains reason.new("dpop_bound_token_as_bearer", 401, msg) if {
	token.ok
	method == "dpop"
	token.scheme != "dpop"
	msg := "the DPoP-bound token was presented as a bearer token"
}

reasons contains reason.with_error(reason.new("dpop_proof_invalid", 401, proof_error), "invalid_dpop_proof") if {
	token.ok
	method == "dpop"
	token.scheme == "dpop"
	not proof_valid
}

reasons contains reason.with_error(reason.new("dpop_key_mismatch", 401, msg), "invalid_dpop_proof") if {
	token.ok
	method == "dpop"
	token.scheme == "dpop"
	proof_valid
	not key_matches
	msg := "the DPoP proof key is not the key the token is bound to"
}

reasons contains reason.with_error(reason.new("dpop_proof_invalid", 401, msg), "invalid_dpop_proof") if {
	token.ok
	method != "dpop"
	token.scheme == "dpop"
	msg := "the DPoP scheme was used with a token that is not DPoP-bound"
}

reasons contains reason.new("mtls_certificate_missing", 401, msg) if {
	token.ok
	method == "mtls"
	not certificate
	msg := "the certificate-bound token was presented without a client certificate"
}

reasons contains reason.new("mtls_binding_mismatch", 401, msg) if {
	token.ok
	method == "mtls"
	certificate
	not certificate_matches
	msg := "the client certificate is not the one the token is bound to"
}
