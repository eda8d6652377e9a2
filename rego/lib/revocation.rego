# Guardrail: revocation on user state changes. Asks the PDP's state store,
# through the pdp.revocation built-in, whether the token, its subject, its
# session or its client was revoked after the token was issued (admin API,
# RFC 7009 revocation, Shared Signals events). Built-in errors are strict on
# the decision path: a store failure is a policy_error deny, never a pass.
package tokenguard.lib.revocation

import data.tokenguard.lib.reason
import data.tokenguard.lib.token

# Reason code by revocation kind; an unknown kind still denies.
codes := {
	"jti": "token_revoked",
	"subject": "subject_revoked",
	"session": "session_revoked",
	"client": "client_revoked",
}

messages := {
	"jti": "the access token was revoked",
	"subject": "the user's tokens issued before %s were revoked",
	"session": "the session's tokens issued before %s were revoked",
	"client": "the client's tokens issued before %s were revoked",
}

# ref: what the store needs to find a revocation of this token.
ref := {
	"iss": object.get(input.token, "issuer", ""),
	"sub": token.subject,
	"jti": jti,
	"sid": string_claim("sid"),
	"client_id": token.client_id,
	"iat": iat,
}

# jti: the token's jti, or, for a token without one, "sha256:" and its hash
# (what POST /v1/revoke stores for such a token).
jti := string_claim("jti") if {
	string_claim("jti") != ""
} else := concat("", ["sha256:", input.token.hash]) if {
	is_string(input.token.hash)
	input.token.hash != ""
} else := ""

string_claim(name) := token.claims[name] if {
	is_string(token.claims[name])
} else := ""

# iat in seconds; without one, every cut-off applies (0 is before all).
default iat := 0

iat := token.claims.iat if is_number(token.claims.iat)

# status: {"revoked": bool, "kind", "at" (ns), "reason"}.
status := pdp.revocation(ref) if token.valid

reasons contains reason.new(code, 401, message) if {
	status.revoked == true
	code := object.get(codes, status.kind, "token_revoked")
	message := describe(status)
}

# Fail closed where built-in errors are not strict (OPA then makes the call
# undefined): no answer from the store is never "not revoked".
reasons contains reason.new("policy_error", 500, "the revocation status is unavailable") if {
	token.valid
	not answered
}

default answered := false

answered if is_object(status)

describe(s) := messages.jti if {
	s.kind == "jti"
} else := sprintf(messages[s.kind], [time.format(s.at)]) if {
	is_number(s.at)
	messages[s.kind]
} else := "the access token was revoked"

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["revoked"] := status.revoked == true

explain["kind"] := status.kind if status.revoked == true

explain["jti"] := jti if jti != ""

explain["session_id"] := string_claim("sid") if string_claim("sid") != ""
