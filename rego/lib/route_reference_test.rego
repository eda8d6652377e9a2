# The route matching of lib/route.rego written in Rego: what the pdp.route
# built-in answers, route by route. The Rego tests use it in place of the
# built-in (`with pdp.route as route_reference.route`), so that stock
# `opa test` runs them, and the Go tests check that the built-in answers as
# it does (internal/route). It scans the table on every call: a reference,
# not for serving.
package tokenguard.lib.route_reference

# route: {"broken": [indexes]} when some routes are not well-formed;
# otherwise {"index": i, "route": r} for the first route r (at i) that the
# request matches, undefined without one.
route(routes, method, host, path) := {"broken": sort(broken)} if {
	broken := {i | some i, r in routes; not well_formed(r)}
	count(broken) > 0
} else := {"index": i, "route": routes[i]} if {
	not regex.match(`(^|/)\.\.?(/|$)`, path)
	i := matching(routes, upper(method), lower(host), path)[0]
}

# matching: the indexes of the routes the request matches, in a table of
# well-formed routes.
matching(routes, method, host, path) := [i |
	some i, r in routes
	method_matches(r, method)
	host_matches(r, host)
	glob.match(pattern(r.path), ["/"], path)
]

# --- the route table -------------------------------------------------------

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

method_matches(r, _) if object.get(r, "methods", null) in {null, "*"}

method_matches(r, method) if {
	some m in r.methods
	upper(m) in {"*", method}
}

# HEAD is served by GET handlers: a route that lists GET guards it.
method_matches(r, "HEAD") if {
	some m in r.methods
	upper(m) == "GET"
}

host_matches(r, _) if object.get(r, "host", null) in {null, "*"}

# A route's host is a DNS name: its root's trailing dot is dropped
# (api.example.com. is api.example.com), as request hosts lose theirs.
host_matches(r, host) if {
	route_host := r.host
	is_string(route_host)
	not startswith(route_host, "*.")
	lower(trim_root_dot(route_host)) == host
}

# "*.example.com" matches exactly one more label: a.example.com, not
# example.com nor a.b.example.com.
host_matches(r, host) if {
	route_host := r.host
	is_string(route_host)
	startswith(route_host, "*.")
	suffix := lower(trim_root_dot(substring(route_host, 1, -1)))
	endswith(host, suffix)
	label := trim_suffix(host, suffix)
	label != ""
	not contains(label, ".")
}

# pattern: the route path as a glob in which a "*" segment needs at least one
# character, so that /v1/accounts/* never matches /v1/accounts/ (often the
# list endpoint). "**" still matches any depth, none included. It takes two
# replacements: in "/*/*" the first one's match takes the "/" between them.
trim_root_dot(h) := substring(h, 0, count(h) - 1) if {
	count(h) > 1
	endswith(h, ".")
} else := h

pattern(path) := regex.replace(
	regex.replace(path, `(^|/)\*(/|$)`, "$1?*$2"),
	`(^|/)\*(/|$)`, "$1?*$2",
)

test_pattern_star_segments_need_a_character if {
	pattern("/v1/*/x/**/*") == "/v1/?*/x/**/?*"
	pattern("/*/*/*/*") == "/?*/?*/?*/?*"
	pattern("/v1/a*") == "/v1/a*"
}
