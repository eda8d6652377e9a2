# Guardrail: route. Finds the route the request is for in data.pdp.routes
# and checks that the token was meant for it: its audience (RFC 8707) and
# the grant types that may use it. lib/scope.rego and lib/intent.rego read
# the matched route (`route`) for the scopes and authorization details it
# needs.
#
# A route: {"name", "methods": [...] (absent, "*" or containing "*": any;
# GET also matches HEAD), "host" (exact, case-insensitive, a trailing dot
# dropped; "*.example.com" matches one label; absent or "*": any), "path"
# (glob: "*" one segment, "**" any depth), "audience", "scopes": [...],
# "grant_types": [...], "authorization_details": {"type", "actions": [...]},
# "path_parameters": true (";" path parameters accepted; absent or false:
# refused)}. The first route that matches applies. Without a match,
# data.pdp.unknown_routes decides: "deny" (the default, and the value for
# anything but "allow") or "allow" (route, scope and intent checks skipped).
#
# A messaging operation (input.message) is matched against
# data.pdp.destinations instead (lib/destination.rego), never against the
# routes: the destination it matches is its `route` here, and the audience
# and grant types are checked as for a route. Without a match,
# data.pdp.unknown_destinations decides as unknown_routes does; a connect
# is not matched.
#
# Reasons (mode "route", see lib/mode.rego):
#   route_unknown           403 no route matches and unknown routes are denied
#   destination_unknown     403 (mode "destination") no destination matches a
#                           message and unknown destinations are denied
#   audience_mismatch       401 invalid_token: neither aud nor resource names
#                           the route's audience
#   grant_type_not_allowed  403 the token's grant type is not one of the
#                           route's grant_types
#   policy_error            500 (always enforced) the route table (for a
#                           message: the destination table) is malformed
#
# And, for every access-token request whatever its token and grant module
# (main.rego adds parameter_reasons; never monitorable):
#   request_path_invalid    400 the path has ";" path parameters and the
#                           route it matches does not accept them
package tokenguard.lib.route

import data.tokenguard.lib.config
import data.tokenguard.lib.destination
import data.tokenguard.lib.grant
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {
	"route_unknown": "route",
	"destination_unknown": "destination",
	"audience_mismatch": "route",
	"grant_type_not_allowed": "route",
}

default routes := []

routes := config.pdp.routes if is_array(config.pdp.routes)

default unknown_allowed := false

unknown_allowed if config.get_string(["unknown_routes"], "deny") == "allow"

# --- the route table and matching --------------------------------------------

# The pdp.route built-in matches the request against the table: it compiles
# the table once per policy version into a tree on host and path segments,
# so that a decision costs the same with one route or ten thousand. It does
# what this comment says, exactly; rego/lib/route_reference_test.rego is the
# same matching written in Rego, which the Go tests compare it with and the
# Rego tests use in its place (`with pdp.route as route_reference.route`).
#
# Routes are checked first: a route is well-formed when it is an object
# whose path is a string of path characters, "*" and "**" starting with "/"
# (other glob syntax would match more than the author meant), whose host and
# audience are strings or absent, methods "*" or strings, scopes and
# grant_types strings, authorization_details an object with a non-empty
# string type and string actions, path_parameters a boolean (each absent or
# null allowed). A table with a route that is not is broken: it matches
# nothing, and pdp.route lists the broken routes (skipping a broken route
# could let a later, broader route apply to the requests it was meant for).
#
# Matching: the method in upper and the host in lower case against each
# route's methods (absent, "*" or containing "*": any; GET also matches
# HEAD, which servers answer with their GET handler) and host (exact,
# case-insensitive; "*.example.com" one more label: a.example.com, not
# example.com nor a.b.example.com; absent or "*": any); the path against the
# route's glob with "/" as the delimiter, in which a "*" segment needs at
# least one character (so /v1/accounts/* never matches /v1/accounts/, often
# the list endpoint) and "**" matches any depth, none included. A path with
# a "." or ".." segment never matches (Go's path normalisation removes them,
# %2E%2E included; one that is still there is refused).

# table_error: what is wrong with the table, undefined when nothing: it is
# neither an array nor absent (no routes), or some of its routes are not
# well-formed (never both: malformed routes are found in an array). Either
# is a policy_error.
table_error := "data.pdp.routes is not an array" if {
	not type_name(object.get(config.pdp, "routes", null)) in {"null", "array"}
} else := sprintf("data.pdp.routes has malformed routes (indexes %v)", [sort(broken)]) if {
	count(broken) > 0
}

# lookup: what pdp.route answers for this request, undefined when no route
# matches, and for a message.
lookup := pdp.route(routes, request_method, request_host, raw_path) if not destination.message

# broken: indexes of routes that are not well-formed.
broken contains i if some i in lookup.broken

# route: the first route matching the request; undefined without one, and
# for a broken table. For a message: the destination it matches.
route := lookup.route if not table_error

route := destination.matched if destination.message

# raw_method, raw_host, raw_path: the request's fields as sent, "" when
# absent or not a string, for messages. Each names its field: a policy that
# reads input.request with a variable key depends on every header, and Go
# could no longer reuse its decisions (see main.rego).
default raw_method := ""

raw_method := input.request.method if is_string(input.request.method)

default raw_host := ""

raw_host := input.request.host if is_string(input.request.host)

default raw_path := ""

raw_path := input.request.path if is_string(input.request.path)

# What routes are matched against: the method in upper and the host in
# lower case, "" when absent or not a string.
default request_method := ""

request_method := upper(method) if {
	method := input.request.method
	is_string(method)
}

default request_host := ""

request_host := lower(host) if {
	host := input.request.host
	is_string(host)
}

# --- path parameters ---------------------------------------------------------

# Go normalises the path and refuses every spelling that parsers read as
# different paths (docs/path-normalisation.md), but keeps ";" path
# parameters (RFC 3986 §3.3): servers that strip them (Tomcat, Jetty,
# Spring) read another path than the route table does, so a path with
# one, raw or as %3B (both are ";" in input.request.path), is refused unless
# the route it matches accepts them. No route, a broken table, or a route
# without "path_parameters": true refuses (fail closed).
default accepts_parameters := false

accepts_parameters if route.path_parameters == true

parameter_reasons contains reason.new("request_path_invalid", 400, msg) if {
	contains(raw_path, ";")
	not accepts_parameters
	msg := "the request path is refused: path parameters (;) on a route that does not accept them"
}

# --- what the matched route asks for ---------------------------------------

default scopes := []

scopes := route_scopes if {
	route_scopes := route.scopes
	is_array(route_scopes)
}

default audience := ""

audience := route_audience if {
	route_audience := route.audience
	is_string(route_audience)
}

# addressed: the token's aud or RFC 8707 resource claim, each a string or an
# array of strings, names the route's audience.
addressed if token.claims.aud == audience

addressed if token.claims.resource == audience

addressed if {
	some name in ["aud", "resource"]
	claim := token.claims[name]
	is_array(claim)
	audience in claim
}

# open_to_grant: the route lists the token's grant type, by the names
# lib/grant.rego derives.
open_to_grant if {
	aliases := grant.aliases
	type := grant.type
	some g in route.grant_types
	object.get(aliases, g, g) == type
}

# --- reasons ---------------------------------------------------------------

# In each clause the condition that fails for most requests comes first.

reasons contains reason.new("policy_error", 500, table_error) if not destination.message

reasons contains reason.new("policy_error", 500, destination.table_error) if destination.matched_against_table

reasons contains reason.new("route_unknown", 403, msg) if {
	not route
	token.ok
	not table_error
	not unknown_allowed
	not destination.message
	msg := sprintf("no route for %s %s%s", [raw_method, raw_host, raw_path])
}

reasons contains reason.new("destination_unknown", 403, msg) if {
	destination.matched_against_table
	not route
	token.ok
	not destination.table_error
	not destination.unknown_allowed
	msg := sprintf("no destination for %s on %s %s", [destination.operation, destination.broker, destination.asked])
}

reasons contains reason.new("audience_mismatch", 401, msg) if {
	audience != ""
	not addressed
	token.ok
	msg := sprintf("the token is not meant for %s", [audience])
}

reasons contains reason.new("grant_type_not_allowed", 403, msg) if {
	is_array(route.grant_types)
	not open_to_grant
	token.ok
	msg := sprintf("route %q is not open to %s tokens", [object.get(route, "name", ""), grant.type])
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["matched"] := object.get(route, "name", "") if route

explain["method"] := request_method if not destination.message

explain["host"] := request_host if not destination.message

explain["path"] := raw_path if not destination.message

explain["broker"] := destination.broker if destination.message

explain["operation"] := destination.operation if destination.message

explain["destination"] := destination.asked if destination.matched_against_table

explain["audience"] := audience if audience != ""

explain["token_audience"] := [a |
	some name in ["aud", "resource"]
	claim := token.claims[name]
	some a in array.flatten([claim])
	is_string(a)
]

explain["grant_types"] := route.grant_types if is_array(route.grant_types)

explain["grant_type"] := grant.type

explain["unknown_routes"] := "allow" if {
	not destination.message
	unknown_allowed
}

explain["unknown_routes"] := "deny" if {
	not destination.message
	not unknown_allowed
}

explain["unknown_destinations"] := "allow" if {
	destination.matched_against_table
	destination.unknown_allowed
}

explain["unknown_destinations"] := "deny" if {
	destination.matched_against_table
	not destination.unknown_allowed
}
