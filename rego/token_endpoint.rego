# The token endpoint module. Go adds input.token_endpoint {grant_type,
# refresh} to a POST to data.pdp.token_endpoint.url; such a request carries
# no access token, so main hands it to this module instead of the token and
# grant guardrails. The authorization server still answers the request; this
# module stops what it should not see (lib/refresh.rego) and asks Go for the
# revocations that reuse calls for (`effects`).
#
# A denial is what the AS would answer (400, error "invalid_grant"), so the
# decision's headers stay empty: no WWW-Authenticate.
package tokenguard.token_endpoint

import data.tokenguard.lib.config
import data.tokenguard.lib.reason

guardrails := {"refresh"}

upstream_headers := {}

# Defence in depth: input.token_endpoint only ever comes with a POST to the
# configured URL; anything else would skip the access-token checks.
reasons contains reason.new("policy_error", 500, msg) if {
	not to_the_endpoint
	msg := "token endpoint input for a request that is not a POST to data.pdp.token_endpoint.url"
}

to_the_endpoint if {
	input.request.method == "POST"
	is_string(input.request.url)
	configured := config.get_string(["token_endpoint", "url"], "")
	configured != ""
	origin_and_path(input.request.url) == origin_and_path(configured)
}

# origin_and_path: the URL without its query, with the scheme and host in
# lower case and without the default port (as Go normalises it).
origin_and_path(url) := regex.replace(
	regex.replace(lower_origin(split(url, "?")[0]), `^https://([^/]*):443(/|$)`, "https://$1$2"),
	`^http://([^/]*):80(/|$)`, "http://$1$2",
)

lower_origin(url) := concat("", [lower(parts[1]), parts[2]]) if {
	parts := regex.find_all_string_submatch_n(`^([A-Za-z][A-Za-z0-9+.-]*://[^/]*)(.*)$`, url, 1)[0]
} else := url
