package tokenguard.grants.authorization_code_test

import data.tokenguard.fixtures
import data.tokenguard.grants.authorization_code

base := fixtures.input_for(fixtures.user_claims("authorization_code"))

test_lists_the_guardrails_tested_here if {
	authorization_code.guardrails == {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "fingerprint"}
}

test_allow_a_valid_authorization_code_token_with_user_headers if {
	fixtures.decide(base) == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"warnings": [],
		"headers": {},
		"upstream_headers": {
			"x-tokenguard-subject": "alice",
			"x-tokenguard-client-id": "web",
			"x-tokenguard-scopes": "accounts:read",
			"x-tokenguard-grant-type": "authorization_code",
		},
		"grant_type": "authorization_code",
		"module": "grants.authorization_code",
		"effects": [],
		"valid_until": fixtures.now + 3300000000001,
	}
}

test_allow_a_user_token_without_a_grant_type_claim if {
	d := fixtures.decide(json.remove(base, ["token/claims/gty"]))
	d.allow
	d.grant_type == "authorization_code"
	d.module == "grants.authorization_code"
	d.upstream_headers["x-tokenguard-subject"] == "alice"
}

test_deny_when_switched_off_in_data if {
	d := fixtures.decide_with(base, fixtures.with_data({"grant_types": {"allowed": []}}))
	not d.allow
	d.grant_type == "authorization_code"
	d.module == ""
	fixtures.codes(d) == ["grant_type_not_allowed"]
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

test_fingerprint_passes if fixtures.passes(base, "fingerprint")

test_fingerprint_denies if fixtures.denies(base, "fingerprint")
