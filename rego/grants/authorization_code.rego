# Grant module: authorization code (RFC 6749 §4.1). A user's token, obtained
# by a client through the user's browser.
package tokenguard.grants.authorization_code

import data.tokenguard.lib.upstream

# Guardrails (rego/lib) applied to this grant, besides the token and grant
# guardrails that main applies to every request. A user's bearer token also
# gets the fingerprint check (a stolen browser or device token shows up
# from elsewhere).
guardrails := {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "fingerprint"}

upstream_headers := upstream.user_headers("authorization_code")
