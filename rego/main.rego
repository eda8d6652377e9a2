# Entry point of the tokenguard policy. Go evaluates data.tokenguard.main.decision.
#
# Input (built by Go):
#   now             int, ns since epoch
#   environment     string, e.g. "prod"
#   context         object from the caller ({} by default)
#   request         method, url (normalised), scheme, host, port, path,
#                   query {name: [values]}, headers {lower-case name: [values]}
#                   (authorization, dpop, cookie, proxy-authorization removed),
#                   remote_ip (may be absent),
#                   client_cert {"x5t#S256"} (absent without a client certificate)
#   message         instead of request, for a messaging operation: broker,
#                   operation, destination ("" for connect), vhost, remote_ip
#                   (may be absent); see lib/destination.rego
#   token           present, scheme ("bearer"|"dpop"), valid, error {code, message}
#                   (only when not valid), source ("jwt"|"introspection"), hash,
#                   issuer, claims (verified; {} when not valid),
#                   bound {method ("dpop"|"mtls"|"none"), jkt, "x5t#S256"}
#   dpop            present, valid, jkt, error {code ("dpop_proof_invalid" |
#                   "dpop_replayed" | "dpop_nonce_required"), message},
#                   nonce (a fresh server nonce, when nonces are on)
#   token_endpoint  only for a POST to data.pdp.token_endpoint.url:
#                   grant_type, refresh {present, valid, error {code, message},
#                   hash, issuer, subject, session_id, client_id, reused,
#                   family {id, created (ns), rotations}}
#
# Output, always defined; anything unexpected is a deny with a reason:
#   {
#     "allow": bool,
#     "status": 200 on allow; on deny the first of 400, 401, 403, 500 that a
#               reason carries,
#     "reasons": [{"code", "message", "status", "error"?, "scope"?}], most
#                important first (status 400, 401, 403, 500, then code),
#                empty on allow,
#     "warnings": [{"code", "message"}], sorted by code: what guardrails in
#                 monitor mode found (on allow and deny alike),
#     "headers": for the client: "www-authenticate" on deny (not at the
#                token endpoint), "dpop-nonce" whenever Go issued a nonce,
#     "upstream_headers": {"x-tokenguard-...": "..."} on allow, {} on deny,
#     "grant_type": "authorization_code" | "client_credentials" |
#                   "refresh_token" | "device_code" | "token_exchange" | "",
#     "module": "grants.<grant_type>", "token_endpoint", or "" when no
#               module applied,
#     "effects": [{"revoke": {"kind", "iss", "value", "reason"}}], what Go
#                must carry out before answering ([] when nothing),
#     "valid_until": ns since epoch or null: the decision holds, for the same
#                    input but input.now and the same store state, while
#                    input.now < valid_until; null when input.now plays no
#                    part in it (see valid_until below),
#   }
#
# Layout: an access-token request goes through lib/token.rego and
# lib/grant.rego, then the grant module picked by the derived grant type
# (grants/<grant_type>.rego), which lists the further guardrails that apply
# (its `guardrails`: names of lib modules, each defining `reasons` and listed
# in guardrail_modules below), may add reasons of its own (`reasons`) and
# builds the upstream headers (`upstream_headers`). A token-endpoint request
# goes to token_endpoint.rego instead. A lib module may declare `modes`
# ({code: mode name}); main turns the reasons of guardrails in monitor mode
# into warnings (lib/mode.rego).
# Settings come from data.pdp (rego/data.json), always read with defaults.
package tokenguard.main

import data.tokenguard.lib.challenge
import data.tokenguard.lib.grant
import data.tokenguard.lib.mode
import data.tokenguard.lib.reason
import data.tokenguard.lib.route
import data.tokenguard.lib.token

# Guardrails for every access-token request: they decide whether a grant
# module applies.
baseline := {"token", "grant"}

# Guardrails that can never be put in monitor mode, whatever they or the
# data say: token validity (signature, issuer, expiry...), deprecated and
# disabled grant types, revocation.
always_enforced := {"token", "grant", "revocation"}

default at_token_endpoint := false

at_token_endpoint if is_object(input.token_endpoint)

# Rules that differ at the token endpoint first check input.token_endpoint:
# at_token_endpoint needs it, and OPA's rule index then skips the token
# endpoint's branch of an access-token request without evaluating it.

default grant_type := ""

grant_type := object.get(grant.aliases, input.token_endpoint.grant_type, "") if {
	input.token_endpoint
	at_token_endpoint
} else := grant.type

# The grant module deciding an access-token request, by grant type.
module_grant := grant.type if {
	not at_token_endpoint
	grant.applies
}

default module := ""

module := "token_endpoint" if {
	input.token_endpoint
	at_token_endpoint
	data.tokenguard.token_endpoint.guardrails
} else := sprintf("grants.%s", [module_grant]) if data.tokenguard.grants[module_grant].guardrails

guardrails := {g | some g in data.tokenguard.token_endpoint.guardrails} if {
	input.token_endpoint
	at_token_endpoint
} else := baseline | {g | some g in data.tokenguard.grants[module_grant].guardrails}

module_reasons := data.tokenguard.token_endpoint.reasons if {
	input.token_endpoint
	at_token_endpoint
} else := data.tokenguard.grants[module_grant].reasons

module_upstream_headers := data.tokenguard.token_endpoint.upstream_headers if {
	input.token_endpoint
	at_token_endpoint
} else := data.tokenguard.grants[module_grant].upstream_headers

# --- reasons: denials and warnings -------------------------------------------

# found: [guardrail, reason] for everything the applied guardrails and the
# module object to; the module's own reasons have guardrail "".
found contains [g, r] if {
	some g in guardrails
	some r in data.tokenguard.lib[g].reasons
}

found contains ["", r] if {
	module != ""
	some r in module_reasons
}

# A path with ";" parameters is refused unless its route accepts them
# (lib/route.rego), whatever the token and the grant module, like the
# refusals of Go's path normalisation: never in monitor mode.
found contains ["", r] if {
	not at_token_endpoint
	some r in route.parameter_reasons
}

# A listed guardrail without a lib module would silently check nothing.
found contains ["", reason.new("policy_error", 500, msg)] if {
	some g in (guardrails - guardrail_modules)
	msg := sprintf("guardrail %q is not defined", [g])
}

# guardrail_modules: the lib modules that are guardrails (they define
# `reasons`), so that a listed name is checked with one set difference
# rather than one look-up per name. A new guardrail module goes here too
# (main_test.rego checks that this set is complete).
guardrail_modules := {
	"token", "grant", "sender", "revocation", "lifetime", "route",
	"scope", "intent", "network", "fingerprint", "delegation", "refresh",
}

# monitored: the reason's guardrail names a mode for its code, and that mode
# is "monitor" for this client.
monitored(g, r) if {
	not g in always_enforced
	r.status != 500
	mode.monitored(data.tokenguard.lib[g].modes[r.code])
}

denials contains r if {
	some [g, r] in found
	not monitored(g, r)
}

monitored_reasons contains r if {
	some [g, r] in found
	monitored(g, r)
}

# Codes that are denied, by guardrail: an effect is carried out only for a
# reason that is enforced, never for one in monitor mode.
enforced contains [g, r.code] if {
	some [g, r] in found
	not monitored(g, r)
}

default allow := false

allow if {
	input.token_endpoint
	at_token_endpoint
	module != ""
	count(denials) == 0
}

allow if {
	not at_token_endpoint
	token.ok
	module != ""
	count(denials) == 0
	is_object(module_upstream_headers)
}

# reasons: the denials, or, should nothing have been found but the request
# still not be allowed, a reason saying so (fail closed).
reasons := denials if {
	count(denials) > 0
} else := set() if {
	allow
} else := {reason.new("policy_error", 500, "no module decided the request")}

# Most important first: the status precedence, then the code.
precedence := {400: 0, 401: 1, 403: 2, 500: 3}

reason_list := [r | some r in reasons] if {
	count(reasons) == 1
} else := [r |
	some entry in sort([[rank, r.code, r.message, r] |
		some r in reasons
		rank := object.get(precedence, r.status, 4)
	])
	r := entry[3]
]

warnings := [] if {
	count(monitored_reasons) == 0
} else := [w |
	some entry in sort({[r.code, r.message] | some r in monitored_reasons})
	w := {"code": entry[0], "message": entry[1]}
]

# Status: 200 on allow; otherwise a malformed request (400) comes before an
# authentication problem (401), which comes before a permission problem (403):
# the status of the first reason, which reason_list puts first for it.
status := 200 if {
	allow
} else := s if {
	some s in [400, 401, 403]
	reason_list[0].status == s
} else := 500

# --- headers ---------------------------------------------------------------

headers := object.union(challenge_header, nonce_header)

# The challenge follows the first reason, which carries the decided status.
default challenge_header := {}

challenge_header := {"www-authenticate": challenge.header(reason_list[0])} if {
	not allow
	not at_token_endpoint
}

# RFC 9449 §8: a fresh server nonce goes to the client on every answer.
default nonce_header := {}

nonce_header := {"dpop-nonce": input.dpop.nonce} if {
	input.dpop.nonce # for OPA's rule index: most requests have no nonce
	not at_token_endpoint
	token.header_safe(input.dpop.nonce)
}

default upstream_headers := {}

upstream_headers := module_upstream_headers if allow

# --- effects ---------------------------------------------------------------

# The effects the applied guardrails ask for, for reasons that are enforced.
# Without an enforced reason (on every allow) there is nothing to carry out.
effects := [] if {
	count(enforced) == 0
} else := sort({e |
	some [g, code] in enforced
	g in guardrails
	some e in data.tokenguard.lib[g].effects
	some _, action in e
	action.reason == code
})

# --- how long the decision holds ---------------------------------------------

# Go reuses a decision for the same request (the same token, and the input
# fields the policy reads) while the state the pdp.* built-ins read is
# unchanged and input.now < valid_until. A module that reads input.now must
# therefore define `valid_until`: the first instant at which one of its
# conditions on input.now would change, undefined when none can. Go checks,
# when it activates a policy, that every module reading input.now defines
# the rule, and otherwise never reuses that policy's decisions.
default valid_until := null

valid_until := min(instants) if count(instants) > 0

instants contains data.tokenguard.lib[_].valid_until

instants contains data.tokenguard.grants[_].valid_until

instants contains data.tokenguard.token_endpoint.valid_until

# On allow most fields are known without building them: no reasons (so no
# challenge and no effects, which only enforced reasons ask for), status 200
# and the module's upstream headers. The else branch is the general case and
# gives the same values on allow.
decision := {
	"allow": true,
	"status": 200,
	"reasons": [],
	"warnings": warnings,
	"headers": nonce_header,
	"upstream_headers": module_upstream_headers,
	"grant_type": grant_type,
	"module": module,
	"effects": [],
	"valid_until": valid_until,
} if {
	allow
} else := {
	"allow": allow,
	"status": status,
	"reasons": reason_list,
	"warnings": warnings,
	"headers": headers,
	"upstream_headers": upstream_headers,
	"grant_type": grant_type,
	"module": module,
	"effects": effects,
	"valid_until": valid_until,
}

# --- explanation (POST /v1/admin/explain, pdp explain) ----------------------

# Never part of a decision: evaluated only when one is explained, with the
# same input. explanation lists every reason an applied guardrail (or the
# module) found, with what the guardrail compared (its `explain`), and
# every applied guardrail that found nothing, as a pass; sorted by
# guardrail, then outcome and code. Go adds where each rule is (file:line).
explanation := [entry[3] | some entry in sort(explained)]

explained contains [name, outcome, r.code, {
	"guardrail": name,
	"code": r.code,
	"message": r.message,
	"mode": mode_of(g, r),
	"outcome": outcome,
	"values": explain_values(g),
}] if {
	some [g, r] in found
	name := guardrail_name(g)
	outcome := outcome_of(g, r)
}

explained contains [g, "pass", "", {
	"guardrail": g,
	"code": "",
	"message": "",
	"mode": guardrail_mode(g),
	"outcome": "pass",
	"values": explain_values(g),
}] if {
	some g in (guardrails & guardrail_modules)
	not found_by(g)
}

found_by(g) if {
	some [name, _] in found
	name == g
}

guardrail_name(g) := g if g != ""

guardrail_name("") := module if module != ""

guardrail_name("") := "request" if module == ""

mode_of(g, r) := "monitor" if monitored(g, r)

else := "enforce"

outcome_of(g, r) := "warn" if monitored(g, r)

else := "deny"

# guardrail_mode: "monitor" when every mode name of the guardrail is in
# monitor mode for this client, "enforce" otherwise.
guardrail_mode(g) := "monitor" if {
	not g in always_enforced
	names := {n | some n in data.tokenguard.lib[g].modes}
	count(names) > 0
	every n in names {
		mode.monitored(n)
	}
} else := "enforce"

explain_values(g) := v if {
	g != ""
	v := data.tokenguard.lib[g].explain
	is_object(v)
} else := {}
