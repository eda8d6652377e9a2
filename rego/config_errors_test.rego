package tokenguard.config_errors_test

import data.tokenguard
import data.tokenguard.fixtures

paths(pdp) := p if {
	errs := tokenguard.config_errors with data.pdp as pdp
	p := {e.path | some e in errs}
}

test_the_fixture_data_has_no_errors if {
	count(tokenguard.config_errors) == 0 with data.pdp as fixtures.policy_data
}

test_no_data_and_null_settings_have_no_errors if {
	count(tokenguard.config_errors) == 0 with data.pdp as {}
	count(tokenguard.config_errors) == 0 with data.pdp as {"realm": null, "routes": null, "lifetimes": {"default": {"max_age": null}}}
}

test_data_pdp_not_an_object if {
	paths("routes") == {"pdp"}
}

# Each broken setting is reported at its path, and only there.
test_a_refresh_reuse_grace_within_a_minute_is_no_error if {
	every grace in ["0s", "3s", "1m"] {
		paths({"token_endpoint": {"refresh_reuse_grace": grace}}) == set()
	}
}

# The URL's scheme is case-insensitive, as Go, which normalises it, reads it.
test_a_token_endpoint_url_of_any_scheme_case_is_no_error if {
	every url in ["https://as.example.com/token", "HTTPS://AS.example.com:443/token?x=1", "Http://as.example.com/t"] {
		paths({"token_endpoint": {"url": url}}) == set()
	}
}

test_broken_settings_are_reported_at_their_path if {
	every pdp, path in {
		{"lifetimes": {"default": {"max_lifetime": "30 minutes"}}}: "pdp.lifetimes.default.max_lifetime",
		{"lifetimes": {"grant_types": {"client_credentials": {"max_age": "1d"}}}}: "pdp.lifetimes.grant_types.client_credentials.max_age",
		{"lifetimes": {"clients": {"web": {"max_lifetime": 60}}}}: "pdp.lifetimes.clients.web.max_lifetime",
		{"lifetimes": {"clients": {"web": {"maxage": "1h"}}}}: "pdp.lifetimes.clients.web.maxage",
		{"lifetimes": {"grant_types": {"password": {}}}}: "pdp.lifetimes.grant_types.password",
		{"lifetimes": []}: "pdp.lifetimes",
		{"realm": 1}: "pdp.realm",
		{"grant_type_claim": ""}: "pdp.grant_type_claim",
		{"grant_types": {"allowed": ["implicit"]}}: "pdp.grant_types.allowed[0]",
		{"grant_types": {"allowed": "client_credentials"}}: "pdp.grant_types.allowed",
		{"dpop": {"algs": ["HS256"]}}: "pdp.dpop.algs[0]",
		{"dpop": {"algs": []}}: "pdp.dpop.algs",
		{"unknown_routes": "Allow"}: "pdp.unknown_routes",
		{"fingerprint": {"ipv4_prefix": 33}}: "pdp.fingerprint.ipv4_prefix",
		{"fingerprint": {"ipv6_prefix": "56"}}: "pdp.fingerprint.ipv6_prefix",
		{"modes": {"lifetime": "off"}}: "pdp.modes.lifetime",
		{"modes": {"lifetimes": "monitor"}}: "pdp.modes.lifetimes",
		{"token_endpoint": {"url": "/token"}}: "pdp.token_endpoint.url",
		{"token_endpoint": {"refresh_reuse": "revoke"}}: "pdp.token_endpoint.refresh_reuse",
		{"token_endpoint": {"refresh_max_age": "30d"}}: "pdp.token_endpoint.refresh_max_age",
		{"token_endpoint": {"refresh_reuse_grace": "2m"}}: "pdp.token_endpoint.refresh_reuse_grace",
		{"token_endpoint": {"refresh_reuse_grace": "-1s"}}: "pdp.token_endpoint.refresh_reuse_grace",
		{"token_endpoint": {"refresh_reuse_grace": 3}}: "pdp.token_endpoint.refresh_reuse_grace",
		{"token_exchange": {"max_delegation_depth": 0}}: "pdp.token_exchange.max_delegation_depth",
		{"environments": {"prod": {"roles": {"user": "accounts:read"}}}}: "pdp.environments.prod.roles.user",
		{"environments": {"prod": {"roles": {"user": []}, "default_roles": ["users"]}}}: "pdp.environments.prod.default_roles[0]",
		{"environments": {"prod": {"frozen_scope": ["x"]}}}: "pdp.environments.prod.frozen_scope",
		{"environments": {"prod": {"client_scopes": {"job": "x"}}}}: "pdp.environments.prod.client_scopes.job",
		{"clients": {"job": {"allowed_cidrs": ["10.0.0.0/33"]}}}: "pdp.clients.job.allowed_cidrs[0]",
		{"clients": {"job": {"allowed_cidrs": "10.0.0.0/8"}}}: "pdp.clients.job.allowed_cidrs",
		{"clients": {"job": {"sender_constraint": "DPoP"}}}: "pdp.clients.job.sender_constraint",
		{"clients": {"job": {"modes": {"network": "audit"}}}}: "pdp.clients.job.modes.network",
		{"clients": {"https://app": {"allowed_cidr": []}}}: `pdp.clients["https://app"].allowed_cidr`,
		{"scopes": []}: "pdp.scopes",
	} {
		paths(pdp) == {path}
	}
}

route(r) := {"routes": [object.union({"path": "/v1/x"}, r)]}

test_malformed_routes_are_reported_at_their_path if {
	every r, path in {
		{"scope": ["a"]}: "pdp.routes[0].scope",
		{"path": null}: "pdp.routes[0].path",
		{"path": "v1/x"}: "pdp.routes[0].path",
		{"path": "/v1/[ab]"}: "pdp.routes[0].path",
		{"methods": "GET"}: "pdp.routes[0].methods",
		{"scopes": "a"}: "pdp.routes[0].scopes",
		{"grant_types": ["password"]}: "pdp.routes[0].grant_types[0]",
		{"audience": ["a"]}: "pdp.routes[0].audience",
		{"path_parameters": "yes"}: "pdp.routes[0].path_parameters",
		{"authorization_details": {"actions": ["read"]}}: "pdp.routes[0].authorization_details.type",
		{"authorization_details": {"type": "t", "action": ["read"]}}: "pdp.routes[0].authorization_details.action",
	} {
		paths(route(r)) == {path}
	}
	paths({"routes": {"path": "/"}}) == {"pdp.routes"}
	paths({"routes": ["/v1"]}) == {"pdp.routes[0]"}
}

test_routes_that_can_never_match if {
	every r, path in {
		{"methods": []}: "pdp.routes[0].methods",
		{"methods": ["GET "]}: "pdp.routes[0].methods[0]",
		{"host": "api.example.com:443"}: "pdp.routes[0].host",
		{"host": "https://api.example.com"}: "pdp.routes[0].host",
		{"host": ""}: "pdp.routes[0].host",
		{"path": "/v1//x"}: "pdp.routes[0].path",
		{"path": "/v1/../x"}: "pdp.routes[0].path",
		{"path": "/v1/./x"}: "pdp.routes[0].path",
		{"path": "/files/a%20b"}: "pdp.routes[0].path",
		{"path": "/users/me%40example/**"}: "pdp.routes[0].path",
		{"path": "/v1/%61dmin"}: "pdp.routes[0].path",
	} {
		paths(route(r)) == {path}
	}
}

test_hosts_that_can_match if {
	every host in ["api.example.com", "API.Example.com", "*.example.com", "*", "localhost", "10.0.0.1", "::1", "api.example.com."] {
		paths(route({"host": host})) == set()
	}
}

test_a_route_shadowed_by_an_earlier_one_can_never_match if {
	every table in [
		[{"path": "/v1/**"}, {"path": "/v1/accounts/*", "methods": ["GET"]}],
		[{"path": "/**", "methods": "*"}, {"path": "/v1"}],
		[{"path": "/v1/x", "methods": ["GET", "post"]}, {"path": "/v1/x", "methods": ["POST"]}],
		[{"path": "/v1/x", "host": "*.example.com"}, {"path": "/v1/x", "host": "API.example.com"}],
		[{"path": "/v1/x"}, {"path": "/v1/y"}, {"path": "/v1/x", "host": "api.example.com", "methods": ["*"]}],
	] {
		shadowed := count(table) - 1
		paths({"routes": table}) == {sprintf("pdp.routes[%d]", [shadowed])}
	}
}

# The shadowed-route check looks earlier routes up by covering_paths: the
# paths covers_path accepts, no more and no fewer.
test_covering_paths_are_the_paths_that_cover if {
	candidates := ["/", "/**", "/v1", "/v1/", "/v1/**", "/v1/x", "/v1/x/**", "/v1/*", "/v1/*/y", "/v1/x/y", "/v2/**", "/v1/x**", "/**/x"]
	every later in candidates {
		{e | some e in candidates; tokenguard.covers_path(e, later)} == {e | some e in candidates; e in tokenguard.covering_paths(later)}
	}
}

# plain_route is a shortcut past route_errors: a plain route never has
# errors, and the routes of a large table usually are plain.
test_a_plain_route_has_no_errors if {
	routes := [
		{"path": "/v1/x"}, {"path": "/v1/*/y/**", "methods": ["GET", "post"], "host": "*.example.com"},
		{"path": "/x", "methods": "*", "host": "*", "name": "n", "audience": "a", "scopes": ["s"], "grant_types": ["client_credentials"], "path_parameters": true},
		{"path": "/x", "host": "::1"}, {"path": "/x", "host": "10.0.0.1"},
		{"path": "/x", "methods": []}, {"path": "/x", "methods": ["GE T"]}, {"path": "/x", "methods": "GET"},
		{"path": "/x", "host": "a b"}, {"path": "/x", "host": ""}, {"path": "/x//y"}, {"path": "/x/../y"}, {"path": "/x/[a]"},
		{"path": "/x", "grant_types": ["magic"]}, {"path": "/x", "grant_types": "client_credentials"}, {"path": "/x", "scopes": [1]},
		{"path": "/x", "name": 1}, {"path": "/x", "audience": null}, {"path": "/x", "path_parameters": "yes"}, {"path": "/x", "other": 1},
		{"path": 1}, {"name": "no path"}, "a route", {"path": "/x", "authorization_details": {"type": "t"}},
	]
	plain := {i | some i, r in routes; tokenguard.plain_route(r)}
	plain == {0, 1, 2, 3, 4, 17}
	every i in plain {
		count(tokenguard.route_errors([], routes[i])) == 0
	}
}

test_routes_that_overlap_only_in_part_are_not_shadowed if {
	every table in [
		[{"path": "/v1/accounts/*"}, {"path": "/v1/**"}],
		[{"path": "/v1/x", "methods": ["GET"]}, {"path": "/v1/x"}],
		[{"path": "/v1/x", "methods": ["GET"]}, {"path": "/v1/x", "methods": ["GET", "POST"]}],
		[{"path": "/v1/x", "host": "a.example.com"}, {"path": "/v1/x"}],
		[{"path": "/v1/x", "host": "*.example.com"}, {"path": "/v1/x", "host": "a.b.example.com"}],
		[{"path": "/v1/**"}, {"path": "/v1"}],
		[{"path": "/v1/*"}, {"path": "/v1/x/y"}],
	] {
		paths({"routes": table}) == set()
	}
}

# --- destinations --------------------------------------------------------------

errors_at(pdp) := m if {
	errs := tokenguard.config_errors with data.pdp as pdp
	m := {e.path: e.message | some e in errs}
}

good_destinations := [
	{"name": "orders", "broker": "nats", "destination": "orders.*", "operations": ["publish"], "scopes": ["orders:write"], "audience": "https://api.example.com"},
	{"broker": "nats", "destination": ">", "operations": ["subscribe", "consume", "configure"]},
	{"broker": "rabbitmq", "destination": "orders", "grant_types": ["client_credentials"]},
	{"broker": "rabbitmq", "destination": "*.eu.#", "authorization_details": {"type": "order_events", "actions": ["read"]}},
	{"broker": "kafka", "destination": "payments.*"},
	{"broker": "my-broker_2", "destination": "a..b"},
]

test_well_formed_destinations_have_no_errors if {
	paths({"destinations": good_destinations, "unknown_destinations": "allow"}) == set()
	paths({"destinations": null, "unknown_destinations": null}) == set()
	paths({"destinations": []}) == set()
}

test_broken_destinations_are_reported_at_their_path if {
	every pdp, path in {
		{"destinations": {"broker": "nats"}}: "pdp.destinations",
		{"destinations": ["x"]}: "pdp.destinations[0]",
		{"unknown_destinations": "Allow"}: "pdp.unknown_destinations",
		{"destinations": [{"destination": "a"}]}: "pdp.destinations[0].broker",
		{"destinations": [{"broker": "NATS", "destination": "a"}]}: "pdp.destinations[0].broker",
		{"destinations": [{"broker": "nats"}]}: "pdp.destinations[0].destination",
		{"destinations": [{"broker": "nats", "destination": 1}]}: "pdp.destinations[0].destination",
		{"destinations": [{"broker": "nats", "destination": "a", "topic": "b"}]}: "pdp.destinations[0].topic",
		{"destinations": [{"broker": "nats", "destination": "a", "operations": "publish"}]}: "pdp.destinations[0].operations",
		{"destinations": [{"broker": "nats", "destination": "a", "operations": []}]}: "pdp.destinations[0].operations",
		{"destinations": [{"broker": "nats", "destination": "a", "operations": ["write"]}]}: "pdp.destinations[0].operations[0]",
		{"destinations": [{"broker": "nats", "destination": "a", "operations": ["publish", "connect"]}]}: "pdp.destinations[0].operations[1]",
		{"destinations": [{"broker": "nats", "destination": "a", "scopes": "s"}]}: "pdp.destinations[0].scopes",
		{"destinations": [{"broker": "nats", "destination": "a", "grant_types": ["password"]}]}: "pdp.destinations[0].grant_types[0]",
		{"destinations": [{"broker": "nats", "destination": "a", "audience": 1}]}: "pdp.destinations[0].audience",
		{"destinations": [{"broker": "nats", "destination": "a", "authorization_details": {"actions": []}}]}: "pdp.destinations[0].authorization_details.type",
	} {
		paths(pdp) == {path}
	}
}

test_destinations_are_checked_in_their_brokers_syntax if {
	every broker, dest in {
		"nats": ["orders..x", "orders.", ".orders", "orders.>.x", "orders*", "or>ders", "a b", ""],
		"rabbitmq": ["a*", "a.#b", "my queue"],
		"kafka": ["a*b", "**", "*a"],
	} {
		every d in dest {
			paths({"destinations": [{"broker": broker, "destination": d}]}) == {"pdp.destinations[0].destination"}
		}
	}
	errors_at({"destinations": [{"broker": "nats", "destination": "a.>.b"}]}) == {
		"pdp.destinations[0].destination": `is not a NATS subject: tokens are never empty, "*" and ">" are whole tokens, ">" only the last`,
	}
}

test_destination_bounds if {
	long := concat("", ["a" | some _ in numbers.range(1, 1025)])
	errors_at({"destinations": [{"broker": "kafka", "destination": long}]}) == {"pdp.destinations[0].destination": "is longer than 1024 bytes"}
	ok := concat("", ["a" | some _ in numbers.range(1, 1024)])
	paths({"destinations": [{"broker": "kafka", "destination": ok}]}) == set()
	deep := concat(".", ["a" | some _ in numbers.range(1, 65)])
	errors_at({"destinations": [{"broker": "nats", "destination": deep}]}) == {"pdp.destinations[0].destination": "has more than 64 tokens"}
	errors_at({"destinations": [{"broker": "nats", "destination": "a", "operations": ["connect"]}]}) == {
		"pdp.destinations[0].operations[0]": "is never matched against destinations: a connect names none",
	}
}
