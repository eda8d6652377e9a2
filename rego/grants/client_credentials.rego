# Grant module: client credentials (RFC 6749 §4.4). The client acts for
# itself: the token carries no user rights (checklist J11), even when its
# sub looks like a user id. Upstream headers name the client, never a
# subject, and user claims such as roles or groups are never read.
package tokenguard.grants.client_credentials

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request. No fingerprint check: a
# service's token is commonly shared by its replicas, from several addresses;
# pin services with allowed_cidrs (network) or a sender constraint instead.
# The scope guardrail restricts client tokens by environments[env].
# client_scopes, never by roles.
guardrails := {"sender", "revocation", "lifetime", "route", "scope", "intent", "network"}

upstream_headers := upstream.client_headers("client_credentials")
