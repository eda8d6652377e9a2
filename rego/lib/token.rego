# Guardrail: token validity. Go verifies the token (signature, issuer,
# audience, time claims, type) and reports the result in input.token; this
# guardrail turns that result into reasons and checks the shape of the claims
# the policy reads. Also the one place that reads claims for other modules.
package tokenguard.lib.token

import data.tokenguard.lib.reason

# Error codes Go may report in input.token.error.code. Any other value is
# reported as token_invalid, so reason codes stay a known, bounded set.
go_errors := {
	"token_missing",
	"token_malformed",
	"token_signature_invalid",
	"token_alg_not_allowed",
	"token_type_invalid",
	"issuer_untrusted",
	"audience_mismatch",
	"token_expired",
	"token_not_yet_valid",
	"token_claims_missing",
	"token_inactive",
	"introspection_failed",
	"request_invalid",
}

default present := false

present if input.token.present == true

default valid := false

valid if {
	input.token.present == true
	input.token.valid == true
}

default scheme := ""

scheme := input.token.scheme if is_string(input.token.scheme)

default error_code := "token_invalid"

error_code := input.token.error.code if input.token.error.code in go_errors

default error_message := "the access token could not be verified"

error_message := input.token.error.message if {
	is_string(input.token.error.message)
	input.token.error.message != ""
}

# ok: a verified token with well-formed claims; grant modules apply only then.
ok if {
	valid
	count(reasons) == 0
}

claims_object if is_object(input.token.claims)

# Verified claims; {} unless the token is valid and its claims are an object.
default claims := {}

claims := input.token.claims if {
	valid
	claims_object
}

# claim_names: the names of the verified claims, for the modules that ask
# whether a claim is there at all.
claim_names := object.keys(claims)

default subject := ""

subject := claims.sub if is_string(claims.sub)

default client_id := ""

client_id := claims.client_id if is_string(claims.client_id)

# scopes: from the "scope" string (RFC 9068) or, without it, the "scp" array.
default scopes := []

scopes := [s | some s in split(claims.scope, " "); s != ""] if {
	is_string(claims.scope)
} else := [s | some s in claims.scp; s != ""] if {
	not "scope" in claim_names
	strings_only(claims.scp)
}

# header_safe: a non-empty string without control characters, so that it can
# go into an HTTP header unchanged (no CR/LF header splitting).
header_safe(s) if {
	is_string(s)
	regex.match(`^\P{Cc}+$`, s)
}

strings_only(xs) if {
	is_array(xs)
	every x in xs {
		header_safe(x)
	}
}

# --- reasons ---------------------------------------------------------------

# (input.token.error.code == "request_invalid" is error_code ==
# "request_invalid", as an input comparison that OPA's rule index checks
# without evaluating the clause.)
reasons contains reason.new("request_invalid", 400, error_message) if {
	input.token.error.code == "request_invalid"
}

# An unverified token gets one reason (none for request_invalid, above).
reasons contains unverified if not valid

unverified := reason.unauthenticated("token_missing", "no access token was presented") if {
	not present
	error_code != "request_invalid"
} else := reason.unauthenticated("token_missing", error_message) if {
	input.token.error.code == "token_missing" # is error_code == "token_missing"
	present
} else := reason.new(error_code, 401, error_message) if {
	present
	error_code != "request_invalid"
}

# A verified token: its scheme and the shape of the claims the policy reads
# (claims are {} unless the token is valid). The input comparison, part of
# `valid`, lets OPA's rule index skip these clauses for an unverified token
# without evaluating them.
reasons contains reason.unauthenticated("token_scheme_unsupported", msg) if {
	input.token.valid == true
	not scheme in {"bearer", "dpop"}
	valid
	msg := "the authorization scheme is not Bearer or DPoP"
}

reasons contains reason.new("token_claims_invalid", 401, "the token claims are not an object") if {
	input.token.valid == true
	not claims_object
	valid
}

reasons contains reason.new("token_claims_invalid", 401, msg) if {
	input.token.valid == true
	some name, value in object.filter(claims, ["sub", "client_id", "scope"])
	not header_safe(value)
	msg := sprintf("the %s claim is not a non-empty string without control characters", [name])
}

reasons contains reason.new("token_claims_invalid", 401, msg) if {
	input.token.valid == true
	scp := claims.scp
	not strings_only(scp)
	msg := "the scp claim is not an array of non-empty strings without control characters"
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["present"] := present

explain["valid"] := valid

explain["scheme"] := scheme

explain["error"] := error_code if not valid

explain["issuer"] := input.token.issuer if is_string(input.token.issuer)

explain["subject"] := subject if subject != ""

explain["client_id"] := client_id if client_id != ""
