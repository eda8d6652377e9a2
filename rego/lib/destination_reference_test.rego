# The destination matching of lib/destination.rego written in Rego: what the
# pdp.destination built-in answers, destination by destination. The Rego
# tests use it in place of the built-in (`with pdp.destination as
# destination_reference.destination`), so that stock `opa test` runs them,
# and the Go tests check that the built-in answers as it does
# (internal/destination). It scans the table on every call and matches with
# regular expressions: a reference, not for serving.
package tokenguard.lib.destination_reference

# destination: {"broken": [indexes]} when some destinations are not
# well-formed; otherwise {"index": i, "destination": d} for the first
# destination d (at i) that the message matches, undefined without one.
destination(destinations, broker, operation, dest) := {"broken": sort(broken)} if {
	broken := {i | some i, d in destinations; not well_formed(d)}
	count(broken) > 0
} else := {"index": i, "destination": destinations[i]} if {
	query_ok(broker, dest)
	i := matching(destinations, broker, operation, dest)[0]
}

# matching: the indexes of the destinations the message matches, in a table
# of well-formed destinations.
matching(destinations, broker, operation, dest) := [i |
	some i, d in destinations
	d.broker == broker
	operation_matches(d, operation)
	covers(broker, d.destination, dest)
]

# --- the destination table ---------------------------------------------------

well_formed(d) if {
	is_object(d)
	broker := d.broker
	is_string(broker)
	regex.match(`^[a-z0-9_-]{1,32}$`, broker)
	dest := d.destination
	is_string(dest)
	syntax_ok(broker, dest)
	type_name(object.get(d, "name", null)) in {"null", "string"}
	type_name(object.get(d, "audience", null)) in {"null", "string"}
	strings_or_null(object.get(d, "operations", null))
	strings_or_null(object.get(d, "scopes", null))
	strings_or_null(object.get(d, "grant_types", null))
	details_ok(object.get(d, "authorization_details", null))
}

strings_or_null(null)

strings_or_null(x) if [s | some s in x; is_string(s)] == x

details_ok(null)

details_ok(d) if {
	is_object(d)
	type := d.type
	is_string(type)
	type != ""
	strings_or_null(object.get(d, "actions", null))
}

# bounded: at most 1024 bytes (two hex digits a byte) and 64 tokens, no
# space nor control character.
bounded(s) if {
	s != ""
	count(hex.encode(s)) <= 2048
	count(split(s, ".")) <= 64
	regex.match(`^[^\x00-\x20\x7f]+$`, s)
}

brokers := {"nats", "rabbitmq"}

syntax_ok("nats", dest) if {
	bounded(dest)
	regex.match(`^(>|([^.*>]+|\*)(\.([^.*>]+|\*))*(\.>)?)$`, dest)
}

syntax_ok("rabbitmq", dest) if {
	bounded(dest)
	regex.match(`^([^.*#]*|\*|#)(\.([^.*#]*|\*|#))*$`, dest)
}

syntax_ok(broker, dest) if {
	not broker in brokers
	bounded(dest)
	regex.match(`^[^*]*\*?$`, dest)
}

# --- the destination a message names ------------------------------------------

# A NATS subject has no empty token, and ">" only last.
query_ok("nats", dest) if {
	bounded(dest)
	not regex.match(`^\.|\.\.|\.$|(^|\.)>\.`, dest)
}

query_ok(broker, dest) if {
	broker != "nats"
	bounded(dest)
}

# --- matching -----------------------------------------------------------------

operation_matches(d, operation) if {
	object.get(d, "operations", null) == null
	operation in {"publish", "subscribe", "consume", "configure"}
}

operation_matches(d, operation) if {
	is_array(d.operations)
	operation in d.operations
}

# The token patterns as regular expressions over "." + the destination, each
# token of the pattern taking "." and what it matches: a literal itself, "*"
# one token that is not the query's own any-number wildcard, NATS ">" one or
# more tokens of any kind, RabbitMQ "#" zero or more.
covers("nats", pattern, dest) if regex.match(token_regex("nats", pattern), concat("", [".", dest]))

covers("rabbitmq", pattern, dest) if regex.match(token_regex("rabbitmq", pattern), concat("", [".", dest]))

covers(broker, pattern, dest) if {
	not broker in brokers
	not endswith(pattern, "*")
	pattern == dest
}

covers(broker, pattern, dest) if {
	not broker in brokers
	endswith(pattern, "*")
	startswith(dest, trim_suffix(pattern, "*"))
}

token_regex(broker, pattern) := concat("", ["^", concat("", [token(broker, t) | some t in split(pattern, ".")]), "$"])

token("nats", "*") := `\.([^.>][^.]*|>[^.]+)`

token("nats", ">") := `(\.[^.]+)+`

token("rabbitmq", "*") := `\.([^.#][^.]*|#[^.]+)?`

token("rabbitmq", "#") := `(\.[^.]*)*`

token(broker, t) := concat("", [`\.`, quote(t)]) if not wildcard(broker, t)

wildcard("nats", t) if t in {"*", ">"}

wildcard("rabbitmq", t) if t in {"*", "#"}

quote(t) := regex.replace(t, `[\\.+*?()|\[\]{}^$]`, `\$0`)

test_token_regex_quotes_literals if {
	token_regex("nats", "a.*.>") == `^\.a\.([^.>][^.]*|>[^.]+)(\.[^.]+)+$`
	token_regex("rabbitmq", "a+b.#") == `^\.a\+b(\.[^.]*)*$`
	quote(`x(y)[z]$^\`) == `x\(y\)\[z\]\$\^\\`
}
