# WWW-Authenticate challenges (RFC 6750 §3, RFC 9449 §7.1) for a denial.
# The scheme is DPoP when the client used it, the token is DPoP-bound or the
# client must use DPoP (data.pdp.clients[id].sender_constraint); DPoP
# challenges carry algs. A reason's "error" (invalid_request, invalid_token,
# insufficient_scope, invalid_dpop_proof, use_dpop_nonce) and "scope" become
# the challenge's error= and scope=.
package tokenguard.lib.challenge

import data.tokenguard.lib.client
import data.tokenguard.lib.config

realm := config.get_string(["realm"], "tokenguard")

algs := config.get_strings(["dpop", "algs"], ["ES256", "ES384", "RS256", "PS256", "EdDSA"])

default dpop := false

dpop if input.token.scheme == "dpop"

dpop if input.token.bound.method == "dpop"

# A client has settings only when it is known: from a verified access token,
# or at the token endpoint from a verified refresh token (lib/client.rego).
# Checking that first lets OPA's rule index skip these clauses otherwise.
dpop if {
	input.token.valid == true
	client.settings.sender_constraint == "dpop"
}

dpop if {
	input.token_endpoint.refresh.valid == true
	client.settings.sender_constraint == "dpop"
}

default scheme := "Bearer"

scheme := "DPoP" if dpop

# header: the challenge for the reason that decides the status. Without an
# "error" in the reason (no token presented) it names only the realm.
header(r) := concat(" ", [scheme, concat(", ", [sprintf("%s=\"%s\"", [name, quote(value)]) |
	some [name, value] in [
		["realm", realm],
		["error", object.get(r, "error", "")],
		["error_description", description(r)],
		["scope", scope(r)],
		["algs", dpop_algs],
	]
	value != ""
])])

description(r) := r.message if {
	object.get(r, "error", "") != ""
	is_string(r.message)
} else := ""

scope(r) := r.scope if {
	is_string(r.scope)
} else := concat(" ", [s | some s in r.scope; is_string(s)]) if {
	is_array(r.scope)
} else := ""

default dpop_algs := ""

dpop_algs := concat(" ", algs) if dpop

# quote: the content of a quoted-string. Characters outside printable ASCII
# become "?", then backslash and double quote are escaped. Most values have
# nothing to replace (printable ASCII without " and \) and stay as they are.
quote(s) := s if {
	regex.match(`^[ !#-\[\]-~]*$`, s)
} else := strings.replace_n({`\`: `\\`, `"`: `\"`}, regex.replace(s, `[^ -~]`, "?"))
