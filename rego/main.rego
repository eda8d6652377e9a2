# Entry point of the tokenguard policy. Go evaluates data.tokenguard.main.decision.
#
# Input (built by Go):
#   now          int, ns since epoch
#   environment  string, e.g. "prod"
#   context      object from the caller ({} by default)
#   request      method, url (normalised), scheme, host, port, path,
#                query {name: [values]}, headers {lower-case name: [values]}
#                (authorization, dpop, cookie, proxy-authorization removed),
#                remote_ip (may be absent),
#                client_cert {"x5t#S256"} (absent without a client certificate)
#   token        present, scheme ("bearer"|"dpop"), valid, error {code, message}
#                (only when not valid), source ("jwt"|"introspection"), hash,
#                issuer, claims (verified; {} when not valid),
#                bound {method ("dpop"|"mtls"|"none"), jkt, "x5t#S256"}
#   dpop         present, valid, jkt, error {code, message} (may be absent)
#
# Output, always defined; anything unexpected is a deny with a reason:
#   {
#     "allow": bool,
#     "status": 200 on allow; on deny the first of 400, 401, 403, 500 that a
#               reason carries,
#     "reasons": [{"code", "message", "status", "error"?, "scope"?}], sorted
#                by code, empty on allow,
#     "headers": {"www-authenticate": "..."} on deny, {} on allow,
#     "upstream_headers": {"x-tokenguard-...": "..."} on allow, {} on deny,
#     "grant_type": "authorization_code" | "client_credentials" |
#                   "refresh_token" | "device_code" | "token_exchange" | "",
#     "module": "grants.<grant_type>", or "" when no grant module applied,
#   }
#
# Layout: lib/token.rego and lib/grant.rego run on every request; the grant
# module picked by the derived grant type (grants/<grant_type>.rego) lists
# the further guardrails that apply (its `guardrails`: names of lib modules,
# each defining `reasons`), may add reasons of its own (`reasons`), and
# builds the upstream headers (`upstream_headers`). Settings come from
# data.pdp (rego/data.json), always read with defaults.
package tokenguard.main

import data.tokenguard.lib.challenge
import data.tokenguard.lib.grant
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

# Guardrails for every request: they decide whether a grant module applies.
baseline := {"token", "grant"}

default grant_type := ""

grant_type := grant.type

# The grant module deciding this request, by grant type.
module_grant := grant.type if grant.applies

default module := ""

module := sprintf("grants.%s", [module_grant]) if data.tokenguard.grants[module_grant].guardrails

guardrails := baseline | {g | some g in data.tokenguard.grants[module_grant].guardrails}

# denials: everything the applied guardrails and the grant module object to.
denials contains r if {
	some g in guardrails
	some r in data.tokenguard.lib[g].reasons
}

denials contains r if {
	module != ""
	some r in data.tokenguard.grants[module_grant].reasons
}

# A listed guardrail without a lib module would silently check nothing.
denials contains reason.new("policy_error", 500, msg) if {
	some g in guardrails
	not defined(g)
	msg := sprintf("guardrail %q is not defined", [g])
}

defined(g) if is_set(data.tokenguard.lib[g].reasons)

default allow := false

allow if {
	token.ok
	module != ""
	count(denials) == 0
	is_object(data.tokenguard.grants[module_grant].upstream_headers)
}

# reasons: the denials, or, should nothing have been found but the request
# still not be allowed, a reason saying so (fail closed).
reasons := denials if {
	count(denials) > 0
} else := set() if {
	allow
} else := {reason.new("policy_error", 500, "no grant module decided the request")}

reason_list := [r | some pair in sort([[r.code, r] | some r in reasons]); r := pair[1]]

# Status: 200 on allow; otherwise a malformed request (400) comes before an
# authentication problem (401), which comes before a permission problem (403).
status := 200 if {
	allow
} else := 400 if {
	has_status(400)
} else := 401 if {
	has_status(401)
} else := 403 if {
	has_status(403)
} else := 500

has_status(s) if {
	some r in reasons
	r.status == s
}

default headers := {}

headers := {"www-authenticate": challenge.header(primary)} if not allow

# primary: the first reason, by code, with the decided status.
primary := [r | some r in reason_list; r.status == status][0] if {
	not allow
} else := reason_list[0] if {
	not allow
}

default upstream_headers := {}

upstream_headers := data.tokenguard.grants[module_grant].upstream_headers if allow

decision := {
	"allow": allow,
	"status": status,
	"reasons": reason_list,
	"headers": headers,
	"upstream_headers": upstream_headers,
	"grant_type": grant_type,
	"module": module,
}
