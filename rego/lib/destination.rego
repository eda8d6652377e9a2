# Destinations: what a messaging operation is matched against, as an HTTP
# request is against routes. A helper of lib/route.rego, not a guardrail:
# the matched destination plays the route's part there, and so for the
# audience, grant types, scopes (lib/scope.rego) and authorization details
# (lib/intent.rego) it asks for.
#
# input.message (built by Go from the "message" of POST /v1/decide):
# {broker, operation ("connect" | "publish" | "subscribe" | "consume" |
# "configure"), destination, vhost, remote_ip}. A connect names no destination and is
# not matched: the token's own guardrails (lifetime, revocation, scope by
# environment, fingerprint, sender) decide it.
#
# A destination: {"name", "broker" ("nats", "rabbitmq", or any other
# lower-case name: [a-z0-9_-], at most 32), "destination" (see below),
# "operations": [...] (absent: publish, subscribe, consume and configure),
# "audience", "scopes": [...], "grant_types": [...],
# "authorization_details": {"type", "actions": [...]}}. The first destination of data.pdp.destinations whose
# broker is the message's, whose operations contain its operation and whose
# destination matches applies. Without a match,
# data.pdp.unknown_destinations decides: "deny" (the default, and the value
# for anything but "allow": destination_unknown) or "allow" (destination,
# scope and intent checks skipped).
#
# The pdp.destination built-in matches: it compiles the table once per
# policy version into a tree on each broker's tokens, so that a decision
# costs the same with one destination or ten thousand. It does what this
# comment says, exactly; rego/lib/destination_reference_test.rego is the
# same matching written in Rego, which the Go tests compare it with and the
# Rego tests use in its place (`with pdp.destination as
# destination_reference.destination`).
#
# Syntax, by broker (at most 1024 bytes and 64 "."-separated tokens, no
# space nor control character):
#   nats      a subject: "*" one token, a last ">" one or more; tokens are
#             never empty, "*" and ">" are whole tokens
#   rabbitmq  an exchange or queue name, matched exactly, or a topic
#             pattern: "*" one word, "#" zero or more; "*" and "#" are
#             whole words
#   other     a name, matched exactly, or with one last "*" every name that
#             starts with what comes before it ("orders.*": "orders.eu.x",
#             "orders.")
# A message's destination may hold wildcards (a subscription to
# "orders.*"): an entry matches it only when it matches all it stands for,
# token by token ("orders.created" does not match "orders.*"; "orders.*"
# and "orders.>" do; "orders.*" does not match "orders.>").
#
# Destinations are checked first, as routes are: a table with one that is
# not well-formed (the syntax above, strings or absent name and audience,
# arrays of strings or absent operations, scopes and grant_types, details as
# a route's) matches nothing, and is a policy_error for every message it
# would be matched for.
package tokenguard.lib.destination

import data.tokenguard.lib.config

# message: the decision is for a messaging operation, not an HTTP request.
default message := false

message if is_object(input.message)

default destinations := []

destinations := config.pdp.destinations if is_array(config.pdp.destinations)

default unknown_allowed := false

unknown_allowed if config.get_string(["unknown_destinations"], "deny") == "allow"

# broker, operation, asked: the message's fields, "" when absent or not a
# string. Each names its field: a policy that reads input.message with a
# variable key cannot have its decisions reused (see main.rego).
default broker := ""

broker := input.message.broker if is_string(input.message.broker)

default operation := ""

operation := input.message.operation if is_string(input.message.operation)

default asked := ""

asked := input.message.destination if is_string(input.message.destination)

# matched_against_table: the message names a destination to match (every
# operation but connect).
matched_against_table if {
	message
	operation != "connect"
}

# table_error: what is wrong with the table, undefined when nothing (see
# lib/route.rego's table_error).
table_error := "data.pdp.destinations is not an array" if {
	not type_name(object.get(config.pdp, "destinations", null)) in {"null", "array"}
} else := sprintf("data.pdp.destinations has malformed destinations (indexes %v)", [sort(broken)]) if {
	count(broken) > 0
}

# lookup: what pdp.destination answers for this message, undefined when no
# destination matches.
lookup := pdp.destination(destinations, broker, operation, asked) if matched_against_table

broken contains i if some i in lookup.broken

# matched: the first destination matching the message; undefined without
# one, for a connect, and for a broken table.
matched := lookup.destination if not table_error
