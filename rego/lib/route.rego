# Guardrail: route. Finds the route the request is for in data.pdp.routes
# and checks that the token was meant for it: its audience (RFC 8707) and
# the grant types that may use it. lib/scope.rego and lib/intent.rego read
# the matched route (`route`) for the scopes and authorization details it
# needs.
#
# A route: {"name", "methods": [...] (absent, "*" or containing "*": any),
# "host" (exact, case-insensitive; "*.example.com" matches one label; absent
# or "*": any), "path" (glob: "*" one segment, "**" any depth), "audience",
# "scopes": [...], "grant_types": [...], "authorization_details": {"type",
# "actions": [...]}, "path_parameters": true (";" path parameters accepted;
# absent or false: refused)}. The first route that matches applies. Without a match,
# data.pdp.unknown_routes decides: "deny" (the default, and the value for
# anything but "allow") or "allow" (route, scope and intent checks skipped).
#
# Reasons (mode "route", see lib/mode.rego):
#   route_unknown           403 no route matches and unknown routes are denied
#   audience_mismatch       401 invalid_token: neither aud nor resource names
#                           the route's audience
#   grant_type_not_allowed  403 the token's grant type is not one of the
#                           route's grant_types
#   policy_error            500 (always enforced) the route table is malformed
#
# And, for every access-token request whatever its token and grant module
# (main.rego adds parameter_reasons; never monitorable):
#   request_path_invalid    400 the path has ";" path parameters and the
#                           route it matches does not accept them
package tokenguard.lib.route

import data.tokenguard.lib.config
import data.tokenguard.lib.grant
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

modes := {
	"route_unknown": "route",
	"audience_mismatch": "route",
	"grant_type_not_allowed": "route",
}

default routes := []

routes := config.pdp.routes if is_array(config.pdp.routes)

default unknown_allowed := false

unknown_allowed if config.get_string(["unknown_routes"], "deny") == "allow"

# --- the route table -------------------------------------------------------

# The table is data, checked again for every request: each route costs a
# few expressions, and matching (below) relies on well-formed routes.

# table_error: what is wrong with the table, undefined when nothing: it is
# neither an array nor absent (no routes), or some of its routes are not
# well-formed (never both: malformed routes are found in an array). Either
# is a policy_error: skipping a broken route could let a later, broader
# route apply to the requests it was meant for.
table_error := "data.pdp.routes is not an array" if {
	not type_name(object.get(config.pdp, "routes", null)) in {"null", "array"}
} else := sprintf("data.pdp.routes has malformed routes (indexes %v)", [sort(broken)]) if {
	count(broken) > 0
}

# broken: indexes of routes that are not well-formed.
broken contains i if {
	some i, r in routes
	not well_formed(r)
}

well_formed(r) if {
	is_object(r)

	# Only "*" and "**" are wildcards: other glob syntax would raise a
	# (strict) built-in error or match more than the author meant.
	path := r.path
	is_string(path)
	regex.match(`^/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*$`, path)
	type_name(object.get(r, "host", null)) in {"null", "string"}
	type_name(object.get(r, "audience", null)) in {"null", "string"}
	methods_ok(object.get(r, "methods", null))
	strings_or_null(object.get(r, "scopes", null))
	strings_or_null(object.get(r, "grant_types", null))
	details_ok(object.get(r, "authorization_details", null))
	type_name(object.get(r, "path_parameters", null)) in {"null", "boolean"}
}

# strings_or_null: absent (null) or an array of strings (keeping only the
# strings of anything else changes it: a string or an object has none).
strings_or_null(null)

strings_or_null(x) if [s | some s in x; is_string(s)] == x

methods_ok("*")

methods_ok(x) if strings_or_null(x)

details_ok(null)

details_ok(d) if {
	is_object(d)
	type := d.type
	is_string(type)
	type != ""
	strings_or_null(object.get(d, "actions", null))
}

# --- matching --------------------------------------------------------------

# route: the first route matching the request; undefined without one, and
# for a broken table.
route := routes[matching[0]] if not table_error

# matching: the indexes of the routes the request matches. Only read through
# `route`, that is for a well-formed table.
matching := [i |
	some i, r in routes
	method_matches(r)
	host_matches(r)
	glob.match(pattern(r.path), ["/"], request_path)
]

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

# What routes are matched against, once per request: the method in upper
# and the host in lower case ("" when absent or not a string), and the path;
# the path is undefined when it is absent, not a string or still has a "."
# or ".." segment (Go's path normalisation removes them, %2E%2E included;
# one that is still there never matches a route).
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

request_path := path if {
	path := input.request.path
	is_string(path)
	not regex.match(`(^|/)\.\.?(/|$)`, path)
}

method_matches(r) if object.get(r, "methods", null) in {null, "*"}

method_matches(r) if {
	some m in r.methods
	upper(m) in {"*", request_method}
}

host_matches(r) if object.get(r, "host", null) in {null, "*"}

host_matches(r) if {
	host := r.host
	is_string(host)
	lower(host) == request_host
}

# "*.example.com" matches exactly one more label: a.example.com, not
# example.com nor a.b.example.com.
host_matches(r) if {
	host := r.host
	is_string(host)
	startswith(host, "*.")
	suffix := lower(substring(host, 1, -1))
	endswith(request_host, suffix)
	label := trim_suffix(request_host, suffix)
	label != ""
	not contains(label, ".")
}

# pattern: the route path as a glob in which a "*" segment needs at least one
# character, so that /v1/accounts/* never matches /v1/accounts/ (often the
# list endpoint). "**" still matches any depth, none included. It takes two
# replacements: in "/*/*" the first one's match takes the "/" between them.
pattern(path) := regex.replace(
	regex.replace(path, `(^|/)\*(/|$)`, "$1?*$2"),
	`(^|/)\*(/|$)`, "$1?*$2",
)

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

reasons contains reason.new("policy_error", 500, table_error)

reasons contains reason.new("route_unknown", 403, msg) if {
	not route
	token.ok
	not table_error
	not unknown_allowed
	msg := sprintf("no route for %s %s%s", [raw_method, raw_host, raw_path])
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
