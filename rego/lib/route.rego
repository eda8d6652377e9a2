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
# "actions": [...]}}. The first route that matches applies. Without a match,
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

# table_broken: the table is not an array, or one of its routes is not
# well-formed. Either is a policy_error: skipping a broken route could let a
# later, broader route apply to the requests it was meant for.
table_broken if count(broken) > 0

table_broken if not routes_listed

# routes_listed: data.pdp.routes is an array, or absent (no routes).
routes_listed if object.get(config.pdp, "routes", null) == null

routes_listed if is_array(config.pdp.routes)

# broken: indexes of routes that are not well-formed.
broken contains i if {
	some i, r in routes
	not well_formed(r)
}

well_formed(r) if {
	is_object(r)

	# Only "*" and "**" are wildcards: other glob syntax would raise a
	# (strict) built-in error or match more than the author meant.
	is_string(r.path)
	regex.match(`^/[A-Za-z0-9._~!$&'()+,;=:@%*/-]*$`, r.path)
	optional_string(object.get(r, "host", null))
	optional_string(object.get(r, "audience", null))
	optional_methods(object.get(r, "methods", null))
	optional_strings(object.get(r, "scopes", null))
	optional_strings(object.get(r, "grant_types", null))
	optional_details(object.get(r, "authorization_details", null))
}

optional_string(null)

optional_string(x) if is_string(x)

optional_strings(null)

optional_strings(x) if {
	is_array(x)
	every s in x {
		is_string(s)
	}
}

optional_methods("*")

optional_methods(x) if optional_strings(x)

optional_details(null)

optional_details(d) if {
	is_object(d)
	is_string(d.type)
	d.type != ""
	optional_strings(object.get(d, "actions", null))
}

# --- matching --------------------------------------------------------------

# route: the first route matching the request; undefined without one.
route := routes[matching[0]] if not table_broken

matching := [i | some i, r in routes; matches(r)]

matched if route

# request_field: a string field of input.request, "" when absent or not a
# string (so that upper/lower never raise a strict built-in error).
default request_field(_) := ""

request_field(name) := input.request[name] if is_string(input.request[name])

matches(r) if {
	method_matches(r)
	host_matches(r)
	path_matches(r)
}

method_matches(r) if object.get(r, "methods", null) in {null, "*"}

method_matches(r) if "*" in r.methods

method_matches(r) if {
	some m in r.methods
	upper(m) == upper(request_field("method"))
}

host_matches(r) if object.get(r, "host", null) in {null, "*"}

host_matches(r) if {
	is_string(r.host)
	lower(r.host) == lower(request_field("host"))
}

# "*.example.com" matches exactly one more label: a.example.com, not
# example.com nor a.b.example.com.
host_matches(r) if {
	is_string(r.host)
	startswith(r.host, "*.")
	suffix := lower(substring(r.host, 1, -1))
	host := lower(request_field("host"))
	endswith(host, suffix)
	label := trim_suffix(host, suffix)
	label != ""
	not contains(label, ".")
}

path_matches(r) if {
	is_string(input.request.path)
	not dot_segment(input.request.path)
	glob.match(pattern(r.path), ["/"], input.request.path)
}

# pattern: the route path as a glob in which a "*" segment needs at least one
# character, so that /v1/accounts/* never matches /v1/accounts/ (often the
# list endpoint). "**" still matches any depth, none included.
pattern(path) := concat("/", [glob_segment(segment) | some segment in split(path, "/")])

glob_segment("*") := "?*"

glob_segment(segment) := segment if segment != "*"

# Go removes dot segments when it normalises the URL; one that is still
# there (e.g. decoded from %2e%2e) never matches a route.
dot_segment(path) if {
	some segment in split(path, "/")
	segment in {".", ".."}
}

# --- what the matched route asks for ---------------------------------------

default scopes := []

scopes := route.scopes if is_array(route.scopes)

default audience := ""

audience := route.audience if is_string(route.audience)

# audiences: the token's aud and RFC 8707 resource claims, each a string or
# an array of strings.
audiences := {a | some name in ["aud", "resource"]; some a in as_set(token.claims[name])}

as_set(x) := {x} if is_string(x)

as_set(x) := {s | some s in x; is_string(s)} if is_array(x)

# The route's grant types, by the names lib/grant.rego derives.
grant_types := {object.get(grant.aliases, g, g) | some g in route.grant_types}

# --- reasons ---------------------------------------------------------------

reasons contains reason.new("policy_error", 500, msg) if {
	count(broken) > 0
	msg := sprintf("data.pdp.routes has malformed routes (indexes %v)", [sort(broken)])
}

reasons contains reason.new("policy_error", 500, "data.pdp.routes is not an array") if not routes_listed

reasons contains reason.new("route_unknown", 403, msg) if {
	token.ok
	not table_broken
	not matched
	not unknown_allowed
	msg := sprintf("no route for %s %s%s", [request_field("method"), request_field("host"), request_field("path")])
}

reasons contains reason.new("audience_mismatch", 401, msg) if {
	token.ok
	audience != ""
	not audience in audiences
	msg := sprintf("the token is not meant for %s", [audience])
}

reasons contains reason.new("grant_type_not_allowed", 403, msg) if {
	token.ok
	is_array(route.grant_types)
	not grant.type in grant_types
	msg := sprintf("route %q is not open to %s tokens", [object.get(route, "name", ""), grant.type])
}
