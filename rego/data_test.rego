# The one test of *your* policy data (data.json, data.pdp): the dev flow of
# the README still works with it. Every other *_test.rego file tests the
# modules with fixture data of its own, so editing routes, roles, lifetimes
# or clients never breaks them; this test fails only when the data no longer
# allows what `pdp serve --dev` prints. Delete it, or change the request
# below, when your data means to refuse that flow.
package tokenguard.data_test

import data.tokenguard.fixtures
import data.tokenguard.lib.route_reference
import data.tokenguard.main

# What `pdp serve --dev` prints first: GET https://api.example.com/v1/accounts/42
# from 203.0.113.7 with a token of its issuer for alice, client dev-client,
# scope accounts:read, audience https://api.example.com, no roles claim. The
# token here lives 5 minutes (the dev issuer's live an hour), so a tightened
# lifetime limit does not fail this test.
dev_flow := fixtures.patched(
	fixtures.input_for({
		"iss": "http://127.0.0.1:8181/dev", "aud": "https://api.example.com",
		"sub": "alice", "client_id": "dev-client", "scope": "accounts:read",
		"iat": fixtures.now_s - 10, "exp": fixtures.now_s + 290, "jti": "dev-1",
	}),
	{"token": {"issuer": "http://127.0.0.1:8181/dev"}},
)

# The decision with data.pdp as it is (data.json), the store's built-ins
# answering "not revoked, never seen".
decide(inp) := d if {
	d := main.decision with input as inp
		with pdp.revocation as fixtures.revocation_mock
		with pdp.last_seen as fixtures.last_seen_mock
		with pdp.route as route_reference.route
}

test_data_allows_the_dev_flow_get_accounts_with_scope_accounts_read if {
	d := decide(dev_flow)
	explain(d)
	d.allow
	d.upstream_headers["x-tokenguard-scopes"] == "accounts:read"
	d.warnings == []
}

# explain prints why the dev flow is not allowed: OPA shows it beside the
# failed test.
explain(d) if {
	not d.allow
	print(
		"data.pdp no longer allows the README's dev flow: GET https://api.example.com/v1/accounts/42,",
		"token of client dev-client for alice with scope accounts:read and audience https://api.example.com,",
		"environment prod, lifetime 5m. It expects a route for GET /v1/accounts/* on api.example.com with",
		"that audience and scope, the role giving accounts:read in environment prod, and a lifetime limit",
		"of at least 5m. Denied with:", d.reasons,
	)
}

explain(d) if d.allow
