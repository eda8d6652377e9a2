# Grant module: device authorization (RFC 8628). A user's token for a device
# with limited input, often shared or left signed in: its shorter lifetime
# comes from data.pdp.lifetimes.grant_types.device_code (10m as shipped).
package tokenguard.grants.device_code

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request. A user's bearer token also
# gets the fingerprint check (a stolen browser or device token shows up
# from elsewhere).
guardrails := {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "fingerprint"}

upstream_headers := upstream.user_headers("device_code")
