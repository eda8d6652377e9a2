# Guardrail: refresh tokens at the token endpoint (RFC 9700 §4.14: rotation
# with reuse detection). Applies to token-endpoint requests with
# grant_type=refresh_token; other grant types are the AS's business.
#
# Reads input.token_endpoint.refresh {present, valid, error {code, message},
# hash, issuer, subject, session_id, client_id, reused, retried (only when
# true: let through by Go within refresh_reuse_grace, with the warning
# refresh_token_retried), family {id, created (ns), rotations}} and
# data.pdp.token_endpoint:
#   refresh_reuse    "revoke_session" (default; the subject when the token
#                    has no session), "revoke_subject" or "deny" (no
#                    revocation); anything else is revoke_session
#   refresh_max_age  how long a family may live from its first token
#                    (default "720h")
#   refresh_reuse_grace  read by Go (default "0s"): the same client, from
#                    the same network, may present the token once more
#                    within it without that being reuse
#
# Reasons, all 400 with error "invalid_grant" (RFC 6749 §5.2), as the AS
# would answer:
#   refresh_token_invalid  (always enforced) absent, malformed, not
#                          verified or revoked; a missing one is
#                          "invalid_request"
#   refresh_token_reused   [refresh] a rotated-out refresh token came back:
#                          `effects` asks Go to revoke the session/subject
#   refresh_token_expired  [refresh] the family is older than refresh_max_age
# Reuse and age are judged only for a verified refresh token, so a forged
# one can neither revoke anybody's session nor pass as anything.
package tokenguard.lib.refresh

import data.tokenguard.lib.config
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {
	"refresh_token_reused": "refresh",
	"refresh_token_expired": "refresh",
}

applies if input.token_endpoint.grant_type == "refresh_token"

default refresh := {}

refresh := input.token_endpoint.refresh if is_object(input.token_endpoint.refresh)

default present := false

present if refresh.present == true

default valid := false

valid if {
	present
	refresh.valid == true
}

max_age := config.duration_ns(["token_endpoint", "refresh_max_age"], "720h")

policies := {"revoke_session", "revoke_subject", "deny"}

default reuse_policy := "revoke_session"

reuse_policy := config.pdp.token_endpoint.refresh_reuse if config.pdp.token_endpoint.refresh_reuse in policies

default error_message := "the refresh token is not valid"

error_message := refresh.error.message if {
	is_string(refresh.error.message)
	refresh.error.message != ""
}

invalid_grant(code, message) := reason.with_error(reason.new(code, 400, message), "invalid_grant")

# --- what to revoke on reuse -----------------------------------------------

# target: [kind, value] of the revocation reuse asks for.
target := ["session", refresh.session_id] if {
	reuse_policy == "revoke_session"
	token.header_safe(refresh.session_id)
} else := ["subject", refresh.subject] if {
	reuse_policy in {"revoke_session", "revoke_subject"}
	token.header_safe(refresh.subject)
}

effects contains {"revoke": {
	"kind": target[0],
	"iss": refresh.issuer,
	"value": target[1],
	"reason": "refresh_token_reused",
}} if {
	applies
	valid
	refresh.reused == true
	token.header_safe(refresh.issuer)
}

# --- reasons ---------------------------------------------------------------

reasons contains reason.new("refresh_token_invalid", 400, "no refresh token was presented") if {
	applies
	not present
}

reasons contains invalid_grant("refresh_token_invalid", error_message) if {
	applies
	present
	not valid
}

reasons contains invalid_grant("refresh_token_reused", msg) if {
	applies
	valid
	refresh.reused == true
	msg := "the refresh token has already been used"
}

reasons contains invalid_grant("refresh_token_expired", msg) if {
	applies
	valid
	is_number(input.now)
	is_number(refresh.family.created)
	refresh.family.created > 0
	input.now - refresh.family.created > max_age
	msg := sprintf("the refresh token's grant is older than %ds", [floor(max_age / 1000000000)])
}

# valid_until: while the family is younger than refresh_max_age, the first
# instant (ns) at which it will not be (see main.rego).
valid_until := (refresh.family.created + max_age) + 1 if {
	applies
	valid
	is_number(input.now)
	is_number(refresh.family.created)
	refresh.family.created > 0
	input.now - refresh.family.created <= max_age
}

reasons contains reason.new("policy_error", 500, msg) if {
	applies
	not max_age
	msg := "data.pdp.token_endpoint.refresh_max_age is not a positive duration"
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["present"] := present if applies

explain["valid"] := valid if applies

explain["reused"] := refresh.reused == true if applies

explain["reuse_policy"] := reuse_policy if applies

explain["max_age_s"] := floor(max_age / 1000000000) if applies
