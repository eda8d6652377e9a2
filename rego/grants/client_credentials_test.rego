package tokenguard.grants.client_credentials_test

import data.tokenguard.fixtures
import data.tokenguard.grants.client_credentials

base := fixtures.input_for(fixtures.client_claims)

client_headers := {
	"x-tokenguard-client-id": "billing",
	"x-tokenguard-scopes": "accounts:read",
	"x-tokenguard-grant-type": "client_credentials",
}

test_lists_the_guardrails_tested_here if {
	client_credentials.guardrails == {"sender", "revocation", "lifetime", "route", "scope", "intent", "network"}
}

test_allow_a_client_token_with_client_headers_only if {
	fixtures.decide(base) == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"warnings": [],
		"headers": {},
		"upstream_headers": object.union(client_headers, {"x-tokenguard-scopes": "accounts:read batch:run"}),
		"grant_type": "client_credentials",
		"module": "grants.client_credentials",
		"effects": [],
		"valid_until": fixtures.now + 3300000000001,
	}
}

test_allow_sub_equal_to_client_id_is_a_client_token if {
	d := fixtures.decide(json.remove(fixtures.with_claims(base, {"scope": "accounts:read"}), ["token/claims/gty"]))
	d.module == "grants.client_credentials"
	d.upstream_headers == client_headers
}

# J11: a client whose id equals a user id gets no user rights.
test_client_token_whose_sub_is_a_user_id_carries_no_subject if {
	inp := json.remove(fixtures.with_claims(base, {"sub": "alice", "client_id": "alice"}), ["token/claims/gty"])
	d := fixtures.decide_with(inp, fixtures.with_data({"environments": {"prod": {"client_scopes": {"alice": ["accounts:read"]}}}}))
	d.allow
	d.grant_type == "client_credentials"
	not "x-tokenguard-subject" in object.keys(d.upstream_headers)
	d.upstream_headers["x-tokenguard-client-id"] == "alice"
}

test_client_credentials_token_with_a_user_sub_carries_no_subject if {
	d := fixtures.decide(fixtures.with_claims(base, {"sub": "alice", "scope": "accounts:read"}))
	d.allow
	d.upstream_headers == client_headers
}

# J11, whatever the sub: a client token never passes a user-only route.
test_deny_a_client_token_with_a_user_sub_on_a_user_only_route if {
	inp := fixtures.at(fixtures.with_claims(base, {"sub": "alice"}), "GET", "/v1/me")
	fixtures.codes(fixtures.decide(inp)) == ["grant_type_not_allowed"]
	fixtures.decide(fixtures.at(base, "GET", "/v1/batch/nightly")).allow
}

# J11: roles and groups claims are never read, not even to restrict scopes:
# client_scopes decides what a client may use in the environment.
test_roles_and_groups_claims_are_ignored if {
	c := {"roles": ["admin"], "groups": ["ops"], "realm_access": {"roles": ["admin"]}, "scope": "accounts:read accounts:write"}
	d := fixtures.decide(fixtures.with_claims(base, c))
	d.allow
	d.upstream_headers["x-tokenguard-scopes"] == "accounts:read"
	w := fixtures.decide(fixtures.at(fixtures.with_claims(base, c), "POST", "/v1/accounts/42"))
	fixtures.codes(w) == ["scope_restricted"]
}

test_client_tokens_get_a_shorter_lifetime if {
	sixteen_minutes := fixtures.with_claims(base, {"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 900})
	fixtures.codes(fixtures.decide(sixteen_minutes)) == ["lifetime_exceeded"]
}

test_allow_mtls_bound_client_token_with_its_certificate if {
	inp := fixtures.patched(base, {
		"token": {"bound": {"method": "mtls", "x5t#S256": "cert-1"}},
		"request": {"client_cert": {"x5t#S256": "cert-1"}},
	})
	fixtures.decide(inp).allow
}

test_deny_mtls_bound_client_token_with_another_certificate if {
	inp := fixtures.patched(base, {
		"token": {"bound": {"method": "mtls", "x5t#S256": "cert-1"}},
		"request": {"client_cert": {"x5t#S256": "cert-2"}},
	})
	fixtures.codes(fixtures.decide(inp)) == ["mtls_binding_mismatch"]
}

test_sender_passes if fixtures.passes(base, "sender")

test_sender_denies if fixtures.denies(base, "sender")

test_revocation_passes if fixtures.passes(base, "revocation")

test_revocation_denies if fixtures.denies(base, "revocation")

test_lifetime_passes if fixtures.passes(base, "lifetime")

test_lifetime_denies if fixtures.denies(base, "lifetime")

test_route_passes if fixtures.passes(base, "route")

test_route_denies if fixtures.denies(base, "route")

test_scope_passes if fixtures.passes(base, "scope")

test_scope_denies if fixtures.denies(base, "scope")

test_intent_passes if fixtures.passes(base, "intent")

test_intent_denies if fixtures.denies(base, "intent")

test_network_passes if fixtures.passes(base, "network")

test_network_denies if fixtures.denies(base, "network")
