# Guardrail: network. A client with data.pdp.clients[client_id].allowed_cidrs
# may only be used from those networks (the address the gateway vouches for,
# input.request.remote_ip; a client-supplied X-Forwarded-For never counts).
# Entries are CIDRs or single addresses; malformed entries match nothing.
# A request without a remote_ip is denied for such a client.
#
# Reason (mode "network", see lib/mode.rego):
#   ip_not_allowed  403 the remote address is in none of the client's networks
package tokenguard.lib.network

import data.tokenguard.lib.client
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {"ip_not_allowed": "network"}

# configured: the client has allowed_cidrs; any value counts, so that a
# malformed setting denies rather than lifting the restriction.
configured if object.get(client.settings, "allowed_cidrs", null) != null

# networks: the well-formed entries of allowed_cidrs, when it is an array.
networks := {cidr |
	is_array(client.settings.allowed_cidrs)
	some entry in client.settings.allowed_cidrs
	cidr := as_cidr(entry)
}

as_cidr(entry) := entry if {
	is_string(entry)
	net.cidr_is_valid(entry)
}

as_cidr(entry) := sprintf("%s/%d", [entry, client.host_bits(entry)]) if client.valid_ip(entry)

allowed if {
	some cidr in networks
	net.cidr_contains(cidr, client.ip)
}

reasons contains reason.new("ip_not_allowed", 403, msg) if {
	configured
	token.ok
	not allowed
	msg := sprintf("client %q may not be used from this network", [client.id])
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["client_id"] := client.id

explain["configured"] if configured

explain["allowed_cidrs"] := sort(networks) if configured

explain["remote_ip"] := client.ip if client.ip

explain["allowed"] if allowed
