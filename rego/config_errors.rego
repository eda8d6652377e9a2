# Validation of the policy data. config_errors is the set of what is wrong
# with data.pdp, each {"path": "pdp.lifetimes.default.max_lifetime",
# "message": "..."}: every setting a module of the shipped policy reads is
# checked (types, durations, CIDRs, enums), and so are keys no module reads
# (a typo would otherwise be ignored: "scope" for "scopes" requires no scope)
# and routes that can never match. It depends on the data alone, so the PDP
# evaluates it once, when a policy version is activated, and refuses the
# version while it is not empty: the last good version keeps serving.
# `pdp policy check DIR|BUNDLE` prints the same errors offline.
#
# A policy of one's own adds to the set from any module:
#
#   package tokenguard
#
#   config_errors contains {"path": "acme.tenants", "message": "must be an object"} if {
#       not is_object(data.acme.tenants)
#   }
#
# An unset setting and one set to null are the same: the default applies.
# The guardrails still check what they read on every request and deny with
# policy_error when it is malformed: this set only keeps such data from
# being activated in the first place.
#
# "Can never match" means, for the first-match route table: a route whose
# method list is empty, one of whose methods is not an HTTP method token,
# whose host is not a host name, a "*." wildcard, an IP address or "*", or
# whose path has an empty, "." or ".." segment (request paths never do), and
# a route shadowed by an earlier one: the earlier route's methods and host
# cover the later one's, and its path is the same or ends in "/**" and is a
# prefix of the later one's. Partial overlaps are left alone.
package tokenguard

import data.tokenguard.lib.config
import data.tokenguard.lib.grant
import data.tokenguard.lib.mode

# --- what an error looks like -------------------------------------------------

# error(path, message): path is an array of keys and indexes below data.
error(path, message) := {"path": path_string(path), "message": message}

# path_string(["pdp", "routes", 0, "host"]) is "pdp.routes[0].host"; a key
# that is not a plain name is quoted: pdp.clients["https://app"].
path_string(path) := concat("", [segment(i, k) | some i, k in path])

segment(0, k) := k

segment(i, k) := sprintf("[%d]", [k]) if {
	i > 0
	is_number(k)
}

segment(i, k) := sprintf(".%s", [k]) if {
	i > 0
	is_string(k)
	plain(k)
}

segment(i, k) := sprintf("[%s]", [json.marshal(k)]) if {
	i > 0
	is_string(k)
	not plain(k)
}

plain(k) if regex.match(`^[A-Za-z_][A-Za-z0-9_-]*$`, k)

# --- what a value must be ---------------------------------------------------------

# Each problem_* function returns what is wrong with a value that is set
# (not null), and is undefined when nothing is.

problem_string(v) := "must be a string" if {
	v != null
	not is_string(v)
}

problem_name(v) := "must be a non-empty string" if {
	v != null
	not non_empty_string(v)
}

non_empty_string(v) if {
	is_string(v)
	v != ""
}

problem_object(v) := "must be an object" if {
	v != null
	not is_object(v)
}

problem_enum(v, allowed) := sprintf("must be one of %s", [concat(", ", sort([json.marshal(a) | some a in allowed]))]) if {
	v != null
	not v in allowed
}

problem_strings(v) := "must be an array of strings" if {
	v != null
	not strings(v)
}

strings(v) if {
	is_array(v)
	every s in v {
		is_string(s)
	}
}

problem_duration(v) := `must be a positive duration of at most three parts, such as "15m" or "1h30m"` if {
	v != null
	not config.as_duration_ns(v)
}

problem_int(v, low, high) := sprintf("must be an integer from %d to %d", [low, high]) if {
	v != null
	not integer_within(v, low, high)
}

integer_within(v, low, high) if {
	is_number(v)
	v == round(v)
	v >= low
	v <= high
}

# unknown(path, obj, known): an error for each key of obj (an object) that
# is not in known.
unknown(path, obj, known) := {error(array.concat(path, [k]), msg) |
	is_object(obj)
	some k, _ in obj
	not k in known
	msg := sprintf("is not a setting here (one of %s)", [concat(", ", sort(known))])
}

# get(obj, key): the value of key in obj; null when it is absent or obj is
# not an object (null is "not set": every problem_* function is undefined
# for it).
get(obj, key) := object.get(obj, key, null) if is_object(obj)

else := null

# --- data.pdp -----------------------------------------------------------------

pdp_keys := {
	"realm", "grant_type_claim", "grant_types", "dpop", "routes", "unknown_routes", "lifetimes",
	"environments", "clients", "fingerprint", "modes", "token_endpoint", "token_exchange",
	"destinations", "unknown_destinations",
}

config_errors contains error(["pdp"], "must be an object") if {
	data.pdp != null
	not is_object(data.pdp)
}

default pdp := {}

pdp := data.pdp if is_object(data.pdp)

config_errors contains e if some e in unknown(["pdp"], pdp, pdp_keys)

# realm, grant_type_claim, unknown_routes

config_errors contains error(["pdp", "realm"], msg) if msg := problem_string(get(pdp, "realm"))

config_errors contains error(["pdp", "grant_type_claim"], msg) if msg := problem_name(get(pdp, "grant_type_claim"))

config_errors contains error(["pdp", "unknown_routes"], msg) if msg := problem_enum(get(pdp, "unknown_routes"), {"deny", "allow"})

config_errors contains error(["pdp", "unknown_destinations"], msg) if msg := problem_enum(get(pdp, "unknown_destinations"), {"deny", "allow"})

# grant_types.allowed

config_errors contains error(["pdp", "grant_types"], msg) if msg := problem_object(get(pdp, "grant_types"))

config_errors contains e if some e in unknown(["pdp", "grant_types"], get(pdp, "grant_types"), {"allowed"})

config_errors contains error(["pdp", "grant_types", "allowed"], msg) if {
	msg := problem_strings(get(get(pdp, "grant_types"), "allowed"))
}

config_errors contains error(["pdp", "grant_types", "allowed", i], msg) if {
	some i, g in get(get(pdp, "grant_types"), "allowed")
	msg := problem_enum(g, grant.known)
}

# dpop.algs: the algorithms the DPoP challenge names.

dpop_algs := {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

config_errors contains error(["pdp", "dpop"], msg) if msg := problem_object(get(pdp, "dpop"))

config_errors contains e if some e in unknown(["pdp", "dpop"], get(pdp, "dpop"), {"algs"})

config_errors contains error(["pdp", "dpop", "algs"], msg) if msg := problem_strings(get(get(pdp, "dpop"), "algs"))

config_errors contains error(["pdp", "dpop", "algs"], "must not be empty") if get(get(pdp, "dpop"), "algs") == []

config_errors contains error(["pdp", "dpop", "algs", i], msg) if {
	some i, alg in get(get(pdp, "dpop"), "algs")
	msg := problem_enum(alg, dpop_algs)
}

# fingerprint, token_exchange

config_errors contains error(["pdp", "fingerprint"], msg) if msg := problem_object(get(pdp, "fingerprint"))

config_errors contains e if some e in unknown(["pdp", "fingerprint"], get(pdp, "fingerprint"), {"ipv4_prefix", "ipv6_prefix"})

config_errors contains error(["pdp", "fingerprint", key], msg) if {
	some key, high in {"ipv4_prefix": 32, "ipv6_prefix": 128}
	msg := problem_int(get(get(pdp, "fingerprint"), key), 0, high)
}

config_errors contains error(["pdp", "token_exchange"], msg) if msg := problem_object(get(pdp, "token_exchange"))

config_errors contains e if some e in unknown(["pdp", "token_exchange"], get(pdp, "token_exchange"), {"max_delegation_depth"})

config_errors contains error(["pdp", "token_exchange", "max_delegation_depth"], msg) if {
	msg := problem_int(get(get(pdp, "token_exchange"), "max_delegation_depth"), 1, 1000)
}

# token_endpoint (Go also parses url, and refuses what it cannot use).

config_errors contains error(["pdp", "token_endpoint"], msg) if msg := problem_object(get(pdp, "token_endpoint"))

config_errors contains e if {
	some e in unknown(["pdp", "token_endpoint"], get(pdp, "token_endpoint"), {"url", "refresh_reuse", "refresh_max_age", "refresh_reuse_grace"})
}

config_errors contains error(["pdp", "token_endpoint", "url"], "must be an absolute http or https URL") if {
	url := get(get(pdp, "token_endpoint"), "url")
	url != null
	not absolute_url(url)
}

absolute_url(url) if {
	is_string(url)
	regex.match(`^(?i:https?)://[^/?#\s]+(/[^\s#]*)?$`, url)
}

config_errors contains error(["pdp", "token_endpoint", "refresh_reuse"], msg) if {
	msg := problem_enum(get(get(pdp, "token_endpoint"), "refresh_reuse"), {"revoke_session", "revoke_subject", "deny"})
}

config_errors contains error(["pdp", "token_endpoint", "refresh_max_age"], msg) if {
	msg := problem_duration(get(get(pdp, "token_endpoint"), "refresh_max_age"))
}

# Go reads it (internal/policy/settings.go): 0s to 1m.
config_errors contains error(["pdp", "token_endpoint", "refresh_reuse_grace"], `must be a duration from "0s" to "1m", such as "3s"`) if {
	v := get(get(pdp, "token_endpoint"), "refresh_reuse_grace")
	v != null
	not grace_within(v)
}

grace_within(v) if {
	is_string(v)
	ns := time.parse_duration_ns(v)
	ns >= 0
	ns <= 60000000000
}

# modes, global and per client

mode_values := {"enforce", "monitor"}

modes_errors(path, modes) := {error(path, msg) | msg := problem_object(modes)} | {e |
	is_object(modes)
	some name, value in modes
	some e in mode_errors(array.concat(path, [name]), name, value)
}

mode_errors(path, name, _) := {error(path, msg)} if {
	not name in mode.names
	msg := sprintf("is not a guardrail mode name (one of %s)", [concat(", ", sort(mode.names))])
}

mode_errors(path, name, value) := {error(path, msg)} if {
	name in mode.names
	value != null
	msg := problem_enum(value, mode_values)
}

config_errors contains e if some e in modes_errors(["pdp", "modes"], get(pdp, "modes"))

# lifetimes: {default, grant_types: {grant type: limits}, clients: {id: limits}}

lifetime_limits := {"max_lifetime", "max_age"}

config_errors contains error(["pdp", "lifetimes"], msg) if msg := problem_object(get(pdp, "lifetimes"))

config_errors contains e if some e in unknown(["pdp", "lifetimes"], get(pdp, "lifetimes"), {"default", "grant_types", "clients"})

config_errors contains e if some e in limits_errors(["pdp", "lifetimes", "default"], get(get(pdp, "lifetimes"), "default"))

config_errors contains e if {
	some level in ["grant_types", "clients"]
	levels := get(get(pdp, "lifetimes"), level)
	some e in object_errors(["pdp", "lifetimes", level], levels)
}

config_errors contains e if {
	some level in ["grant_types", "clients"]
	some key, limits in get(get(pdp, "lifetimes"), level)
	some e in limits_errors(["pdp", "lifetimes", level, key], limits)
}

config_errors contains error(["pdp", "lifetimes", "grant_types", key], msg) if {
	some key, _ in get(get(pdp, "lifetimes"), "grant_types")
	msg := problem_enum(key, grant.known)
}

object_errors(path, v) := {error(path, msg) | msg := problem_object(v)}

limits_errors(path, limits) := (object_errors(path, limits) | unknown(path, limits, lifetime_limits)) | {error(array.concat(path, [limit]), msg) |
	some limit in lifetime_limits
	msg := problem_duration(get(limits, limit))
}

# environments: {name: {roles, default_roles, client_scopes, frozen_scopes}}

config_errors contains e if some e in object_errors(["pdp", "environments"], get(pdp, "environments"))

config_errors contains e if {
	some name, env in get(pdp, "environments")
	some e in environment_errors(["pdp", "environments", name], env)
}

environment_errors(path, env) := (((object_errors(path, env) | unknown(path, env, {"roles", "default_roles", "client_scopes", "frozen_scopes"})) | {e |
	some key in ["roles", "client_scopes"]
	some e in scope_map_errors(array.concat(path, [key]), get(env, key))
}) | {error(array.concat(path, [key]), msg) |
	some key in ["default_roles", "frozen_scopes"]
	msg := problem_strings(get(env, key))
}) | {error(array.concat(path, ["default_roles", i]), "is not one of the environment's roles") |
	is_object(get(env, "roles"))
	some i, role in get(env, "default_roles")
	is_string(role)
	not role in object.keys(env.roles)
}

scope_map_errors(path, m) := object_errors(path, m) | {error(array.concat(path, [k]), msg) |
	some k, scopes in m
	msg := problem_strings(scopes)
}

# clients: {client_id: {allowed_cidrs, sender_constraint, modes}}

config_errors contains e if some e in object_errors(["pdp", "clients"], get(pdp, "clients"))

config_errors contains e if {
	some id, c in get(pdp, "clients")
	some e in client_errors(["pdp", "clients", id], c)
}

client_errors(path, c) := ((((object_errors(path, c) | unknown(path, c, {"allowed_cidrs", "sender_constraint", "modes"})) | {error(array.concat(path, ["allowed_cidrs"]), msg) |
	msg := problem_strings(get(c, "allowed_cidrs"))
}) | {error(array.concat(path, ["allowed_cidrs", i]), "must be a CIDR (10.0.0.0/8) or an IP address") |
	some i, entry in get(c, "allowed_cidrs")
	is_string(entry)
	not network_entry(entry)
}) | {error(array.concat(path, ["sender_constraint"]), msg) |
	msg := problem_enum(get(c, "sender_constraint"), {"dpop", "mtls"})
}) | modes_errors(array.concat(path, ["modes"]), get(c, "modes"))

network_entry(s) if net.cidr_is_valid(s)

network_entry(s) if {
	not contains(s, "/")
	net.cidr_is_valid(sprintf("%s/%d", [s, host_bits(s)]))
}

default host_bits(_) := 32

host_bits(s) := 128 if contains(s, ":")

# --- routes -----------------------------------------------------------------------

route_keys := {"name", "methods", "host", "path", "audience", "scopes", "grant_types", "authorization_details", "path_parameters"}

routes := get(pdp, "routes")

config_errors contains error(["pdp", "routes"], "must be an array") if {
	routes != null
	not is_array(routes)
}

config_errors contains e if {
	some errs in errors_by_route
	some e in errs
}

# errors_by_route: each route's errors by its index, found once per route;
# none, without building each check's set, for a plain route.
errors_by_route := {i: errs |
	some i, r in routes
	errs := route_errors_of(i, r)
} if is_array(routes)

route_errors_of(i, r) := set() if plain_route(r)

else := route_errors(["pdp", "routes", i], r)

# plain_route: r has none of route_errors' problems, checked in one body
# (a table of thousands of routes is checked in a few seconds, not tens):
# known keys, no authorization_details, a valid path, string name and
# audience, a valid host and methods, string scopes, known grant types, a
# boolean path_parameters (each but the path may be absent). A route that is
# not plain is checked by route_errors, which names its problems.
plain_route(r) if {
	is_object(r)
	count(object.keys(r) - plain_route_keys) == 0
	p := r.path
	is_string(p)
	regex.match(`^/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*$`, p)
	not regex.match(`(^|/)\.\.?(/|$)`, p)
	not contains(p, "//")
	not regex.match(`%[0-9A-Fa-f]{2}`, p)
	type_name(object.get(r, "name", null)) in {"null", "string"}
	type_name(object.get(r, "audience", null)) in {"null", "string"}
	type_name(object.get(r, "path_parameters", null)) in {"null", "boolean"}
	plain_host(object.get(r, "host", null))
	plain_methods(object.get(r, "methods", null))
	plain_strings(object.get(r, "scopes", null))
	plain_grant_types(object.get(r, "grant_types", null))
}

plain_route_keys := route_keys - {"authorization_details"}

plain_host(null)

plain_host(host) if {
	is_string(host)
	valid_host(host)
}

plain_methods(null)

plain_methods("*")

plain_methods(methods) if {
	strings(methods)
	methods != []
	every m in methods {
		regex.match("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", m)
	}
}

plain_strings(null)

plain_strings(v) if strings(v)

plain_grant_types(null)

plain_grant_types(v) if {
	strings(v)
	names := grant_type_names
	every g in v {
		g in names
	}
}

grant_type_names := object.keys(grant.aliases)

route_errors(path, r) := (((((((((object_errors(path, r) | unknown(path, r, route_keys)) | {error(array.concat(path, ["path"]), "must be set") |
	is_object(r)
	get(r, "path") == null
}) | {error(array.concat(path, [key]), msg) |
	some key in ["name", "host", "audience", "path"]
	msg := problem_string(get(r, key))
}) | {error(array.concat(path, [key]), msg) |
	some key in ["scopes", "grant_types"]
	msg := problem_strings(get(r, key))
}) | {error(array.concat(path, ["path_parameters"]), "must be true or false") |
	not type_name(get(r, "path_parameters")) in {"null", "boolean"}
}) | {error(array.concat(path, ["grant_types", i]), msg) |
	some i, g in get(r, "grant_types")
	is_string(g)
	msg := problem_enum(g, object.keys(grant.aliases))
}) | methods_errors(array.concat(path, ["methods"]), get(r, "methods"))) | host_errors(array.concat(path, ["host"]), get(r, "host"))) | path_errors(array.concat(path, ["path"]), get(r, "path"))) | details_errors(array.concat(path, ["authorization_details"]), get(r, "authorization_details"))

methods_errors(_, null) := set()

methods_errors(_, "*") := set()

methods_errors(path, methods) := {error(path, "must be \"*\" or an array of HTTP methods")} if {
	not methods in {null, "*"}
	not strings(methods)
}

methods_errors(path, methods) := {error(path, "is empty: the route can never match (leave it out, or use \"*\", for any method)")} if {
	methods == []
}

methods_errors(path, methods) := {error(array.concat(path, [i]), "is not an HTTP method: the route can never match it") |
	some i, m in methods
	not regex.match("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", m)
} if {
	strings(methods)
	methods != []
}

# A host is compared with the request's host name (no port): a DNS name, a
# "*." wildcard of one label, an IP address, or "*".
host_errors(path, host) := {error(path, "is not a host name, \"*.\" wildcard, IP address or \"*\": the route can never match") |
	is_string(host)
	not valid_host(host)
}

valid_host("*")

valid_host(host) if regex.match(`^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.?$`, host)

valid_host(host) if {
	contains(host, ":")
	network_entry(host)
}

# A path is a glob: "*" one segment, "**" any depth; no other glob syntax.
path_errors(path, p) := {error(path, msg) |
	is_string(p)
	some msg in path_problems(p)
}

path_problems(p) := {`must start with "/" and hold only path characters, "*" and "**"`} if {
	not regex.match(`^/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*$`, p)
} else := ({msg |
	regex.match(`(^|/)\.\.?(/|$)`, p)
	msg := `has a "." or ".." segment: the route can never match (request paths are normalised)`
} | {msg |
	contains(p, "//")
	msg := `has an empty segment ("//"): the route can never match (request paths are normalised)`
}) | {msg |
	regex.match(`%[0-9A-Fa-f]{2}`, p)
	msg := `has a percent-encoding: request paths are matched decoded, so the route can never match (write the character itself, or use "*")`
}

details_errors(path, d) := ((object_errors(path, d) | unknown(path, d, {"type", "actions"})) | {error(array.concat(path, ["type"]), msg) |
	is_object(d)
	msg := problem_name(object.get(d, "type", ""))
}) | {error(array.concat(path, ["actions"]), msg) |
	msg := problem_strings(get(d, "actions"))
}

# Shadowed routes: route j can never apply when an earlier route i matches
# every request j matches (both well-formed). The routes that could are
# looked up by path and host (covering_paths, covering_hosts), so that a
# table of thousands of routes is checked in about as many steps, not in
# their square.

config_errors contains error(["pdp", "routes", j], msg) if {
	is_array(routes)
	index := covering_index
	some j, later in routes
	count(errors_by_route[j]) == 0
	some p in covering_paths(later.path)
	some h in covering_hosts(later)
	some i in index[p][h]
	i < j
	earlier := routes[i]
	covers_methods(earlier, later)
	covers_host(earlier, later)
	covers_path(earlier.path, later.path)
	msg := sprintf("can never match: route %d (%s) matches every request it matches, and the first matching route applies", [i, json.marshal(object.get(earlier, "name", ""))])
}

# covering_index: the indexes of the well-formed routes by path and host
# key (host_key).
covering_index[path][host_key(r)] contains i if {
	is_array(routes)
	some i, r in routes
	count(errors_by_route[i]) == 0
	path := r.path
}

# covering_paths: the paths with which a route matches every path p
# matches (covers_path): p itself, and p's every prefix that ends with "/"
# followed by "**".
covering_paths(p) := {p} | {concat("", [substring(p, 0, k + 1), "**"]) | some k in indexof_n(p, "/")}

# host_key: "*" for a route of any host, its host in lower case otherwise.
host_key(r) := "*" if object.get(r, "host", null) in {null, "*"}

else := lower(r.host)

# covering_hosts: the host keys of the routes whose host covers r's
# (covers_host): any host, r's own, and the "*." wildcard of its first label.
covering_hosts(r) := {"*"} if object.get(r, "host", null) == null

else := {"*", host} | {wildcard |
	not startswith(host, "*")
	dot := indexof(host, ".")
	dot > 0
	wildcard := concat("", ["*", substring(host, dot, -1)])
} if {
	host := lower(r.host)
}

any_method(r) if object.get(r, "methods", null) in {null, "*"}

any_method(r) if "*" in r.methods

covers_methods(earlier, _) if any_method(earlier)

covers_methods(earlier, later) if {
	not any_method(earlier)
	not any_method(later)
	{upper(m) | some m in later.methods} - {upper(m) | some m in earlier.methods} == set()
}

covers_host(earlier, _) if object.get(earlier, "host", null) in {null, "*"}

covers_host(earlier, later) if {
	is_string(later.host)
	lower(earlier.host) == lower(later.host)
}

covers_host(earlier, later) if {
	startswith(earlier.host, "*.")
	suffix := lower(substring(earlier.host, 1, -1))
	host := lower(later.host)
	not startswith(host, "*")
	endswith(host, suffix)
	label := trim_suffix(host, suffix)
	label != ""
	not contains(label, ".")
}

covers_path(p, p)

covers_path(earlier, later) if {
	endswith(earlier, "/**")
	startswith(later, trim_suffix(earlier, "**"))
}

# --- destinations -------------------------------------------------------------------

# A destination (lib/destination.rego): a broker name, a destination in its
# broker's syntax, operations among publish, subscribe, consume and
# configure (a connect is never matched), and what it asks of the token as
# a route does.

destination_keys := {"name", "broker", "destination", "operations", "audience", "scopes", "grant_types", "authorization_details"}

message_operations := {"publish", "subscribe", "consume", "configure"}

destinations := get(pdp, "destinations")

config_errors contains error(["pdp", "destinations"], "must be an array") if {
	destinations != null
	not is_array(destinations)
}

config_errors contains e if {
	is_array(destinations)
	some i, d in destinations
	not plain_destination(d)
	some e in destination_errors(["pdp", "destinations", i], d)
}

# plain_destination: d has none of destination_errors' problems, checked in
# one body (a table of thousands is checked quickly): known keys, no
# authorization_details, a valid broker and destination, string name and
# audience, known operations, string scopes, known grant types.
plain_destination(d) if {
	is_object(d)
	count(object.keys(d) - plain_destination_keys) == 0
	broker := d.broker
	is_string(broker)
	regex.match(`^[a-z0-9_-]{1,32}$`, broker)
	dest := d.destination
	is_string(dest)
	count(destination_problems(broker, dest)) == 0
	type_name(object.get(d, "name", null)) in {"null", "string"}
	type_name(object.get(d, "audience", null)) in {"null", "string"}
	plain_operations(object.get(d, "operations", null))
	plain_strings(object.get(d, "scopes", null))
	plain_grant_types(object.get(d, "grant_types", null))
}

plain_destination_keys := destination_keys - {"authorization_details"}

plain_operations(null)

plain_operations(ops) if {
	strings(ops)
	ops != []
	every op in ops {
		op in message_operations
	}
}

destination_errors(path, d) := ((((((((object_errors(path, d) | unknown(path, d, destination_keys)) | {error(array.concat(path, [key]), "must be set") |
	is_object(d)
	some key in ["broker", "destination"]
	get(d, key) == null
}) | {error(array.concat(path, [key]), msg) |
	some key in ["name", "audience", "destination"]
	msg := problem_string(get(d, key))
}) | {error(array.concat(path, [key]), msg) |
	some key in ["operations", "scopes", "grant_types"]
	msg := problem_strings(get(d, key))
}) | {error(array.concat(path, ["grant_types", i]), msg) |
	some i, g in get(d, "grant_types")
	is_string(g)
	msg := problem_enum(g, object.keys(grant.aliases))
}) | operations_errors(array.concat(path, ["operations"]), get(d, "operations"))) | broker_errors(array.concat(path, ["broker"]), get(d, "broker"))) | {error(array.concat(path, ["destination"]), msg) |
	broker := get(d, "broker")
	is_string(broker)
	dest := get(d, "destination")
	is_string(dest)
	some msg in destination_problems(broker, dest)
}) | details_errors(array.concat(path, ["authorization_details"]), get(d, "authorization_details"))

broker_errors(path, broker) := {error(path, "must be a broker name: lower-case letters, digits, \"_\" and \"-\", at most 32") |
	broker != null
	not broker_name(broker)
}

broker_name(broker) if {
	is_string(broker)
	regex.match(`^[a-z0-9_-]{1,32}$`, broker)
}

default operations_errors(_, _) := set()

operations_errors(path, []) := {error(path, "is empty: the destination can never match (leave it out for every operation)")}

operations_errors(path, ops) := {error(array.concat(path, [i]), msg) |
	some i, op in ops
	is_string(op)
	msg := operation_problem(op)
} if {
	is_array(ops)
	ops != []
}

operation_problem("connect") := "is never matched against destinations: a connect names none"

operation_problem(op) := sprintf("must be one of %s", [concat(", ", sort([json.marshal(o) | some o in message_operations]))]) if {
	op != "connect"
	not op in message_operations
}

# destination_problems: what is wrong with dest as a destination of broker
# (internal/destination's syntax, which the matcher holds to).
destination_problems(broker, dest) := {"must not be empty"} if {
	dest == ""
} else := size_problems(dest) if {
	count(size_problems(dest)) > 0
} else := syntax_problems(broker, dest)

size_problems(dest) := ({msg |
	count(hex.encode(dest)) > 2048
	msg := "is longer than 1024 bytes"
} | {msg |
	count(split(dest, ".")) > 64
	msg := "has more than 64 tokens"
}) | {msg |
	not regex.match(`^[^\x00-\x20\x7f]+$`, dest)
	msg := "holds a space or a control character"
}

syntax_problems("nats", dest) := {`is not a NATS subject: tokens are never empty, "*" and ">" are whole tokens, ">" only the last`} if {
	not regex.match(`^(>|([^.*>]+|\*)(\.([^.*>]+|\*))*(\.>)?)$`, dest)
}

syntax_problems("rabbitmq", dest) := {`is not a RabbitMQ name or topic pattern: "*" and "#" are whole words`} if {
	not regex.match(`^([^.*#]*|\*|#)(\.([^.*#]*|\*|#))*$`, dest)
}

syntax_problems(broker, dest) := {`has a "*" before its last character: only a last "*" is a wildcard`} if {
	not broker in {"nats", "rabbitmq"}
	not regex.match(`^[^*]*\*?$`, dest)
}

default syntax_problems(_, _) := set()
