# Grant module: refresh token (RFC 6749 §6). A user's access token obtained by
# refreshing an earlier grant. Rotation and reuse detection of the refresh
# token itself happen at the token endpoint (token_endpoint.rego).
package tokenguard.grants.refresh_token

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request. A user's bearer token also
# gets the fingerprint check (a stolen browser or device token shows up
# from elsewhere).
guardrails := {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "fingerprint"}

upstream_headers := upstream.user_headers("refresh_token")
