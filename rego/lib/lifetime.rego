# Guardrail: lifetime. Bounds how long a token may live and how long after
# issue it may still be used, below what the issuer chose.
#
#   exp − iat > max_lifetime  →  lifetime_exceeded  (401 invalid_token)
#   now − iat > max_age       →  token_too_old      (401 invalid_token)
#
# iat and exp are seconds (verified claims), input.now nanoseconds. A token
# without iat (or exp) is not checked for what needs it: Go requires both
# for JWTs (checklist J6); an introspection answer may leave them out.
#
# Each limit resolves on its own, the first setting present winning:
#   data.pdp.lifetimes.clients[client_id].<limit>
#   data.pdp.lifetimes.grant_types[grant type].<limit>   (names as lib/grant)
#   data.pdp.lifetimes.default.<limit>
#   built-in: max_lifetime "1h", max_age "1h"
# Limits are Go durations ("15m"); a malformed one is a policy_error, never
# a fallback to a looser level. Mode "lifetime" (see lib/mode.rego).
package tokenguard.lib.lifetime

import data.tokenguard.lib.client
import data.tokenguard.lib.config
import data.tokenguard.lib.grant
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {
	"lifetime_exceeded": "lifetime",
	"token_too_old": "lifetime",
}

builtin := {"max_lifetime": "1h", "max_age": "1h"}

default lifetimes := {}

lifetimes := config.pdp.lifetimes if is_object(config.pdp.lifetimes)

# setting(limit): the value that applies to this token, and where it is from
# (a level that is not an object has no settings).
setting(limit) := [["clients", client.id, limit], value] if {
	value := lifetimes.clients[client.id][limit]
	value != null
} else := [["grant_types", grant.type, limit], value] if {
	value := lifetimes.grant_types[grant.type][limit]
	value != null
} else := [["default", limit], value] if {
	value := lifetimes.default[limit]
	value != null
} else := [[], builtin[limit]]

# limit_ns(limit): the limit in nanoseconds; undefined when malformed.
limit_ns(limit) := config.as_duration_ns(setting(limit)[1])

iat := value if {
	value := token.claims.iat
	is_number(value)
}

exp := value if {
	value := token.claims.exp
	is_number(value)
}

now := value if {
	value := input.now
	is_number(value)
}

seconds(ns) := floor(ns / 1000000000)

# --- reasons ---------------------------------------------------------------

# The comparisons come first: they fail for most tokens.

reasons contains reason.new("lifetime_exceeded", 401, msg) if {
	limit := limit_ns("max_lifetime")
	(exp - iat) * 1000000000 > limit
	token.ok
	msg := sprintf("the token lives %ds, more than the %ds allowed", [floor(exp - iat), seconds(limit)])
}

reasons contains reason.new("token_too_old", 401, msg) if {
	limit := limit_ns("max_age")
	age := now - (iat * 1000000000)
	age > limit
	token.ok
	msg := sprintf("the token was issued %ds ago, more than the %ds allowed", [seconds(age), seconds(limit)])
}

# valid_until: while the token is not too old, the first instant (ns) at
# which it will be; undefined when max_age does not apply. main.rego reports
# it, so that Go knows how long this decision holds (a module that reads
# input.now must say so through valid_until, see main.rego).
valid_until := ((iat * 1000000000) + limit) + 1 if {
	limit := limit_ns("max_age")
	now - (iat * 1000000000) <= limit
	token.ok
}

reasons contains reason.new("policy_error", 500, msg) if {
	some limit, _ in builtin
	not limit_ns(limit)
	token.ok
	msg := sprintf("data.pdp.lifetimes.%s is not a positive duration", [concat(".", setting(limit)[0])])
}

reasons contains reason.new("policy_error", 500, "input.now is not a number") if {
	not now
	iat
	token.ok
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["lifetime_s"] := exp - iat

explain["max_lifetime_s"] := seconds(limit_ns("max_lifetime"))

explain["max_lifetime_from"] := setting_name("max_lifetime")

explain["age_s"] := seconds(now - (iat * 1000000000))

explain["max_age_s"] := seconds(limit_ns("max_age"))

explain["max_age_from"] := setting_name("max_age")

# setting_name(limit): where the limit that applies is set.
setting_name(limit) := "built-in" if {
	setting(limit)[0] == []
} else := concat(".", array.concat(["data.pdp.lifetimes"], setting(limit)[0]))
