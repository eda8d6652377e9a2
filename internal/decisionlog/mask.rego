# The decision-log mask policy (OPA's system.log): every path in `mask` is
# erased from an event before it is written to the console or uploaded.
#
# The policy input never carries a credential: Go drops the authorization,
# proxy-authorization, dpop and cookie headers and passes the access token,
# the DPoP proof and refresh tokens only as hashes and verified claims.
# These masks make sure of it whatever a gateway sends or a later input
# holds. Here `input` is the event; `input.input` the policy input.
package system.log

# Headers named like a credential are erased one by one.
mask contains sprintf("/input/request/headers/%s", [name]) if {
	some name, _ in input.input.request.headers
	credential_header(name)
	plain_name(name)
}

# A credential header whose name a mask path cannot spell safely: all
# headers go rather than that one staying.
mask contains "/input/request/headers" if {
	some name, _ in input.input.request.headers
	credential_header(name)
	not plain_name(name)
}

# Query parameters named like a credential (RFC 6750 §2.3 access_token,
# codes, signatures, API keys, session ids, passwords), in every spelling
# (api-key, api_key, key, PHPSESSID, pwd): the query goes, and the URL
# that repeats it.
mask contains "/input/request/query" if credential_query

mask contains "/input/request/url" if credential_query

credential_query if {
	some name, _ in input.input.request.query
	regex.match(`(?i)(auth|token|secret|pass|pwd|api[-_]?key|key$|sess|cookie|credential|signature|sig$|jwt|assertion|bearer|ticket|saml|hmac|code)`, name)
}

credential_header(name) if name in {
	"authorization", "proxy-authorization", "dpop", "cookie", "set-cookie",
	"x-tokenguard-gateway",
}

# The query's credential names, and the headers that repeat a URL with its
# query (Referer, the original-URL headers of gateways and proxies).
credential_header(name) if {
	regex.match(`(?i)(auth|token|secret|pass|pwd|api[-_]?key|key$|sess|cookie|credential|signature|sig$|jwt|assertion|bearer|ticket|saml|hmac|code|referr?er|ur[il]|path|location)`, name)
}

plain_name(name) if regex.match(`^[a-z0-9][a-z0-9_.-]*$`, name)
