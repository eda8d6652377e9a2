# The calling client: its id, its settings (data.pdp.clients[id]) and the
# address the gateway vouches for. A helper for the guardrails, not one.
#
# On the access-token path the client is the token's client_id claim; at the
# token endpoint it is the client_id of the verified refresh token.
package tokenguard.lib.client

import data.tokenguard.lib.config
import data.tokenguard.lib.destination
import data.tokenguard.lib.token

default id := ""

id := refresh_client if {
	is_object(input.token_endpoint)
} else := token.client_id

default refresh_client := ""

refresh_client := input.token_endpoint.refresh.client_id if {
	input.token_endpoint.refresh.valid == true
	token.header_safe(input.token_endpoint.refresh.client_id)
}

# settings: data.pdp.clients[id], or {} for a client without settings.
default settings := {}

settings := entry if {
	id != ""
	entry := config.pdp.clients[id]
	is_object(entry)
}

# ip: input.request.remote_ip (for a message: input.message.remote_ip, the
# address the broker saw) when it is a valid IPv4 or IPv6 address;
# undefined when absent or malformed.
ip := input.request.remote_ip if {
	not destination.message
	valid_ip(input.request.remote_ip)
}

ip := input.message.remote_ip if {
	destination.message
	valid_ip(input.message.remote_ip)
}

# valid_ip checks an address before it reaches net.cidr_contains, which
# raises a (strict) built-in error on a malformed one.
valid_ip(s) if {
	is_string(s)
	not contains(s, "/")
	net.cidr_is_valid(sprintf("%s/%d", [s, host_bits(s)]))
}

# host_bits: the prefix length of a single address of the family of s.
default host_bits(_) := 32

host_bits(s) := 128 if contains(s, ":")
