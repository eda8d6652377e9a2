# Grant module: device authorization (RFC 8628). A user's token for a device
# with limited input; shorter lifetimes come with the lifetime guardrail.
package tokenguard.grants.device_code

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request.
guardrails := {"sender", "revocation"}

upstream_headers := upstream.user_headers("device_code")
