# Grant module: token exchange (RFC 8693). Only the top-level claims and the
# outermost act count (checklist 3): act.sub is the party acting for the
# subject; a nested act is delegation history and never grants anything.
package tokenguard.grants.token_exchange

import data.tokenguard.lib.reason
import data.tokenguard.lib.token
import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request. delegation bounds how deep
# act may nest. No fingerprint check: an exchanged token is held by the
# acting service, commonly shared by its replicas.
guardrails := {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "delegation"}

# actor: the sub of the outermost act; act.act is never read.
actor := token.claims.act.sub if {
	is_object(token.claims.act)
	token.header_safe(token.claims.act.sub)
}

reasons contains reason.new("token_claims_invalid", 401, msg) if {
	not actor
	msg := "the act claim is not an object with a non-empty string sub"
}

upstream_headers := object.union(
	upstream.user_headers("token_exchange"),
	{"x-tokenguard-actor": actor},
)
