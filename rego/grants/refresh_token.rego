# Grant module: refresh token (RFC 6749 §6). A user's token obtained by
# refreshing an earlier grant; rotation and reuse detection come later.
package tokenguard.grants.refresh_token

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request.
guardrails := {"sender", "revocation"}

upstream_headers := upstream.user_headers("refresh_token")
