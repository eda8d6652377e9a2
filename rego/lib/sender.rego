# Guardrail: sender constraint. A token bound to a key (DPoP, RFC 9449) or to
# a client certificate (mTLS, RFC 8705) is only accepted from its holder, and
# a client that must use one may not use a plain bearer token.
#
# Reads input.token.scheme and .bound {method, jkt, "x5t#S256"};
# input.dpop {present, valid, jkt, error {code, message}, nonce} (Go verifies
# the proof: signature, htm, htu, iat, ath, nonce, jti replay; the binding to
# the token is checked here); input.request.client_cert["x5t#S256"];
# data.pdp.clients[client_id].sender_constraint ("dpop" | "mtls").
#
# Reasons, all 401 (mode in brackets; see lib/mode.rego):
#   dpop_required              [dpop] DPoP-bound token presented as Bearer
#                              (D11) or without a proof; invalid_token
#   dpop_proof_invalid         [dpop] the proof did not verify; invalid_dpop_proof
#   dpop_replayed              [dpop] the proof's jti was seen before; invalid_dpop_proof
#   dpop_nonce_required        [dpop] the proof lacks the server nonce;
#                              use_dpop_nonce (main adds the dpop-nonce header)
#   dpop_binding_mismatch      [dpop] the proof key is not cnf.jkt (D10), or
#                              the token is not DPoP-bound; invalid_token
#   mtls_binding_mismatch      [mtls] no client certificate, or not the
#                              token's cnf["x5t#S256"]; invalid_token
#   sender_constraint_required [sender_constraint] the client must use
#                              DPoP/mTLS, the token is not bound that way;
#                              for a message (input.message), which has no
#                              HTTP request to bind a proof or a certificate
#                              to: a bound token (cnf jkt / x5t#S256), or a
#                              client that must use DPoP or mTLS
#   token_binding_unsupported  (always enforced) an unknown binding method
package tokenguard.lib.sender

import data.tokenguard.lib.client
import data.tokenguard.lib.destination
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {
	"dpop_required": "dpop",
	"dpop_proof_invalid": "dpop",
	"dpop_replayed": "dpop",
	"dpop_nonce_required": "dpop",
	"dpop_binding_mismatch": "dpop",
	"mtls_binding_mismatch": "mtls",
	"sender_constraint_required": "sender_constraint",
}

methods := {"dpop", "mtls", "none"}

# bound: the token's binding from its cnf claim; absent or null means
# unbound. Anything but an object with a known method is refused.
default bound := {}

bound := input.token.bound if input.token.bound != null

default method := ""

method := object.get(bound, "method", "none") if is_object(bound)

# --- DPoP ------------------------------------------------------------------

default proof_present := false

proof_present if input.dpop.present == true

proof_present if input.dpop.valid == true

default proof_valid := false

proof_valid if input.dpop.valid == true

# Go's proof error codes and the challenge error each one gets. Any other
# code is a dpop_proof_invalid.
proof_errors := {
	"dpop_proof_invalid": "invalid_dpop_proof",
	"dpop_replayed": "invalid_dpop_proof",
	"dpop_nonce_required": "use_dpop_nonce",
}

default proof_error_code := "dpop_proof_invalid"

proof_error_code := input.dpop.error.code if proof_errors[input.dpop.error.code]

default proof_error_message := "the DPoP proof is not valid"

proof_error_message := input.dpop.error.message if {
	is_string(input.dpop.error.message)
	input.dpop.error.message != ""
}

# The proof was made with the key the token is bound to.
key_matches if {
	jkt := bound.jkt
	is_string(jkt)
	jkt != ""
	input.dpop.jkt == jkt
}

# --- mTLS ------------------------------------------------------------------

# The client certificate the gateway vouches for.
certificate := input.request.client_cert["x5t#S256"] if {
	is_string(input.request.client_cert["x5t#S256"])
	input.request.client_cert["x5t#S256"] != ""
}

certificate_matches if {
	is_string(bound["x5t#S256"])
	certificate == bound["x5t#S256"]
}

# --- required constraint ---------------------------------------------------

constraints := {"dpop", "mtls"}

# required: the constraint the client must use; "" when it has none.
default required := ""

required := constraint if {
	constraint := client.settings.sender_constraint
	constraint != null
}

# --- reasons ---------------------------------------------------------------

# Clauses for one scheme or binding first compare input with it: OPA's rule
# index then skips them for the others without evaluating them.
# input.token.scheme == "dpop" is token.scheme == "dpop", and
# input.token.bound.method == m is method == m for m "dpop" or "mtls".
# token.ok comes last: the other conditions fail for most requests.

reasons contains reason.new("token_binding_unsupported", 401, msg) if {
	not method in methods
	token.ok
	msg := "the token is bound by an unsupported method"
}

# D11: a DPoP-bound token used as a bearer token is a downgrade.
reasons contains reason.new("dpop_required", 401, msg) if {
	input.token.bound.method == "dpop"
	token.scheme != "dpop"
	not destination.message
	token.ok
	msg := "the DPoP-bound token was presented as a bearer token"
}

reasons contains reason.new("dpop_required", 401, msg) if {
	input.token.scheme == "dpop"
	not proof_present
	token.ok
	msg := "no DPoP proof was presented"
}

reasons contains reason.with_error(reason.new(proof_error_code, 401, proof_error_message), error) if {
	input.token.scheme == "dpop"
	proof_present
	not proof_valid
	token.ok
	error := proof_errors[proof_error_code]
}

# D10: the proof key must be the key the token is bound to.
reasons contains reason.new("dpop_binding_mismatch", 401, msg) if {
	input.token.scheme == "dpop"
	input.token.bound.method == "dpop"
	proof_valid
	not key_matches
	token.ok
	msg := "the DPoP proof key is not the key the token is bound to"
}

reasons contains reason.new("dpop_binding_mismatch", 401, msg) if {
	input.token.scheme == "dpop"
	method in {"mtls", "none"}
	proof_valid
	token.ok
	msg := "the DPoP scheme was used with a token that is not DPoP-bound"
}

reasons contains reason.new("mtls_binding_mismatch", 401, msg) if {
	input.token.bound.method == "mtls"
	not certificate
	not destination.message
	token.ok
	msg := "the certificate-bound token was presented without a client certificate"
}

reasons contains reason.new("mtls_binding_mismatch", 401, msg) if {
	input.token.bound.method == "mtls"
	certificate
	not certificate_matches
	token.ok
	msg := "the client certificate is not the one the token is bound to"
}

reasons contains reason.new("sender_constraint_required", 401, msg) if {
	required in constraints
	method != required
	method in methods
	not destination.message
	token.ok
	msg := sprintf("client %q must present a %s-bound token", [client.id, constraint_names[required]])
}

# A message has no HTTP request to bind a DPoP proof or a client
# certificate to: a bound token, or a client that must use one, cannot be
# used for it (a bound token accepted here would be a bearer token again).
reasons contains reason.new("sender_constraint_required", 401, msg) if {
	input.token.bound.method in constraints
	destination.message
	token.ok
	msg := sprintf("a %s-bound token cannot be used for a message: there is no request to bind it to", [constraint_names[method]])
}

reasons contains reason.new("sender_constraint_required", 401, msg) if {
	required in constraints
	not method in constraints
	destination.message
	token.ok
	msg := sprintf("client %q must use %s, which a message cannot carry", [client.id, constraint_names[required]])
}

reasons contains reason.new("policy_error", 500, msg) if {
	required != ""
	not required in constraints
	token.ok
	msg := "the client's sender_constraint setting is neither \"dpop\" nor \"mtls\""
}

constraint_names := {"dpop": "DPoP", "mtls": "mTLS"}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["bound"] := method

explain["required"] := required

explain["proof_present"] := proof_present

explain["proof_valid"] := proof_valid

explain["proof_error"] := proof_error_code if {
	proof_present
	not proof_valid
}

explain["key_matches"] if key_matches

explain["certificate_matches"] if certificate_matches
