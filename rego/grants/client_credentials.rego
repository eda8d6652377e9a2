# Grant module: client credentials (RFC 6749 §4.4). The client acts for
# itself: the token carries no user rights (checklist J11), even when its
# sub looks like a user id. Upstream headers name the client, never a
# subject, and user claims such as roles or groups are never read.
package tokenguard.grants.client_credentials

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request.
guardrails := {"sender", "revocation"}

upstream_headers := upstream.client_headers("client_credentials")
