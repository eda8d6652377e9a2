package tokenguard.grants.device_code_test

import data.tokenguard.fixtures
import data.tokenguard.grants.device_code

base := fixtures.input_for(fixtures.user_claims("urn:ietf:params:oauth:grant-type:device_code"))

test_lists_the_guardrails_tested_here if {
	device_code.guardrails == {"sender", "revocation", "lifetime", "route", "scope", "intent", "network", "fingerprint"}
}

test_allow_a_valid_device_code_token_with_user_headers if {
	d := fixtures.decide(base)
	d.allow
	d.upstream_headers == {
		"x-tokenguard-subject": "alice",
		"x-tokenguard-client-id": "web",
		"x-tokenguard-scopes": "accounts:read",
		"x-tokenguard-grant-type": "device_code",
	}
	d.grant_type == "device_code"
	d.module == "grants.device_code"
}

test_allow_the_short_device_code_grant_type_value if {
	d := fixtures.decide(fixtures.with_claims(base, {"gty": "device_code"}))
	d.allow
	d.module == "grants.device_code"
}

# A limit for device-code tokens applies to them, not to a web login's.
test_device_code_tokens_get_the_lifetime_of_their_grant_type if {
	pdp_data := fixtures.with_data({"lifetimes": {"default": {"max_lifetime": "1h"}, "grant_types": {"device_code": {"max_lifetime": "10m"}}}})
	ten_minutes := fixtures.with_claims(base, {"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 540})
	fixtures.decide_with(ten_minutes, pdp_data).allow
	eleven_minutes := fixtures.with_claims(base, {"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 600})
	fixtures.codes(fixtures.decide_with(eleven_minutes, pdp_data)) == ["lifetime_exceeded"]
	same_for_a_web_login := fixtures.with_claims(eleven_minutes, {"gty": "authorization_code"})
	fixtures.decide_with(same_for_a_web_login, pdp_data).allow
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
