package tokenguard.grants.token_exchange_test

import data.tokenguard.fixtures
import data.tokenguard.grants.token_exchange

base := fixtures.input_for(fixtures.exchange_claims)

test_lists_the_guardrails_tested_here if {
	token_exchange.guardrails == {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "delegation"}
}

test_allow_an_exchanged_token_with_the_actor_header if {
	fixtures.decide(base) == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"warnings": [],
		"headers": {},
		"upstream_headers": {
			"x-tokenguard-subject": "alice",
			"x-tokenguard-client-id": "svc-a",
			"x-tokenguard-scopes": "accounts:read",
			"x-tokenguard-actor": "svc-b",
			"x-tokenguard-grant-type": "token_exchange",
		},
		"grant_type": "token_exchange",
		"module": "grants.token_exchange",
		"effects": [],
		"valid_until": fixtures.now + 3300000000001,
	}
}

test_allow_act_without_a_grant_type_claim_is_token_exchange if {
	d := fixtures.decide(json.remove(base, ["token/claims/gty"]))
	d.allow
	d.module == "grants.token_exchange"
	d.upstream_headers["x-tokenguard-actor"] == "svc-b"
}

# Checklist 3: a nested act is history and never grants anything.
test_nested_act_gives_no_rights_only_the_outermost_actor_counts if {
	d := fixtures.decide(fixtures.with_claims(base, {"act": {"sub": "svc-b", "act": {"sub": "admin"}}}))
	d.allow
	d.upstream_headers["x-tokenguard-actor"] == "svc-b"
	every _, value in d.upstream_headers {
		not contains(value, "admin")
	}
}

test_deny_nested_act_does_not_stand_in_for_a_missing_outer_actor if {
	d := fixtures.decide(fixtures.patched(base, {"token": {"claims": {"act": {"sub": null, "act": {"sub": "admin"}}}}}))
	fixtures.codes(d) == ["token_claims_invalid"]
	d.upstream_headers == {}
}

test_deny_token_exchange_without_act_is_token_claims_invalid if {
	d := fixtures.decide(json.remove(base, ["token/claims/act"]))
	not d.allow
	d.status == 401
	d.reasons == [{
		"code": "token_claims_invalid",
		"status": 401,
		"error": "invalid_token",
		"message": "the act claim is not an object with a non-empty string sub",
	}]
	d.module == "grants.token_exchange"
}

test_deny_act_that_is_not_an_object_with_a_string_sub if {
	every act in ["svc-b", ["svc-b"], null, {}, {"sub": 7}, {"sub": ""}, {"sub": "svc\nb"}] {
		inp := fixtures.patched(json.remove(base, ["token/claims/act"]), {"token": {"claims": {"act": act}}})
		fixtures.codes(fixtures.decide(inp)) == ["token_claims_invalid"]
	}
}

test_deny_delegation_deeper_than_the_data_allows if {
	one_level := fixtures.with_data({"token_exchange": {"max_delegation_depth": 1}})
	fixtures.decide_with(base, one_level).allow
	nested := fixtures.with_claims(base, {"act": {"sub": "svc-b", "act": {"sub": "svc-c"}}})
	fixtures.codes(fixtures.decide_with(nested, one_level)) == ["delegation_too_deep"]
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

test_delegation_passes if fixtures.passes(base, "delegation")

test_delegation_denies if fixtures.denies(base, "delegation")
