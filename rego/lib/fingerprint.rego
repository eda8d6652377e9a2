# Guardrail: fingerprint. A bearer token (input.token.bound.method "none")
# has no proof of possession; this guardrail notices when one is used from
# somewhere else than before. pdp.last_seen(input.token.hash) returns where
# it was last seen ({ip, prefix, ua_hash, first_seen, last_seen, count}), or
# is undefined for a token never seen (which passes; Go records the
# fingerprint after an allowed decision).
#
# With store.backend redis the fingerprints are shared by the replicas.
# While Redis is unavailable, store.on_unavailable.fingerprint decides in Go:
# monitor makes pdp.last_seen undefined (this guardrail passes) and Go adds
# a state_unavailable warning; deny makes the built-in fail, and Go answers
# state_unavailable (503). The policy never sees a partial fingerprint.
#
# Another network: input.request.remote_ip outside fp.ip's network of
# data.pdp.fingerprint.ipv4_prefix (default 24) / ipv6_prefix (default 56)
# bits. Another user agent: crypto.sha256 of the first User-Agent value (""
# when none) differs from fp.ua_hash. Without a remote_ip (now or then) only
# the user agent is compared. A message (input.message) has no user agent:
# only its remote_ip, the address the broker saw, is compared.
#
# Reason (mode "fingerprint", see lib/mode.rego):
#   token_replay_suspected  401 invalid_token
package tokenguard.lib.fingerprint

import data.tokenguard.lib.client
import data.tokenguard.lib.config
import data.tokenguard.lib.destination
import data.tokenguard.lib.reason
import data.tokenguard.lib.sender
import data.tokenguard.lib.token

modes := {"token_replay_suspected": "fingerprint"}

applies if {
	sender.method == "none"
	token.header_safe(input.token.hash)
	token.ok
}

seen := pdp.last_seen(input.token.hash) if applies

# bits: the prefix length that counts as one network, by the family of the
# address last seen.
bits := config.get_int(["fingerprint", "ipv6_prefix"], 56, 0, 128) if contains(seen.ip, ":")

bits := config.get_int(["fingerprint", "ipv4_prefix"], 24, 0, 32) if not contains(seen.ip, ":")

default user_agent := ""

user_agent := input.request.headers["user-agent"][0] if is_string(input.request.headers["user-agent"][0])

other_network if {
	ip := seen.ip
	client.valid_ip(ip)
	client.ip
	not net.cidr_contains(sprintf("%s/%d", [ip, bits]), client.ip)
}

other_user_agent if {
	not destination.message
	ua_hash := seen.ua_hash
	is_string(ua_hash)
	ua_hash != ""
	crypto.sha256(user_agent) != ua_hash
}

reasons contains reason.new("token_replay_suspected", 401, msg) if {
	other_network
	msg := "the bearer token was last used from another network"
}

reasons contains reason.new("token_replay_suspected", 401, msg) if {
	other_user_agent
	msg := "the bearer token was last used by another user agent"
}

reasons contains reason.new("policy_error", 500, msg) if {
	client.valid_ip(seen.ip)
	not bits
	msg := "data.pdp.fingerprint.ipv4_prefix/ipv6_prefix is not a prefix length"
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["applies"] if applies

explain["last_seen_ip"] := seen.ip if is_string(seen.ip)

explain["network_bits"] := bits if seen

explain["other_network"] if other_network

explain["other_user_agent"] if other_user_agent
