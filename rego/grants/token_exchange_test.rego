package tokenguard.grants.token_exchange_test

import data.tokenguard.grants.token_exchange
import data.tokenguard.main

request(c) := {
	"now": 1795000000000000000,
	"environment": "prod",
	"context": {},
	"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42"},
	"token": {
		"present": true,
		"scheme": "bearer",
		"valid": true,
		"source": "jwt",
		"claims": c,
		"bound": {"method": "none"},
	},
}

codes(d) := [r.code | some r in d.reasons]

test_applies_the_sender_constraint if {
	"sender" in token_exchange.guardrails
}

test_allow_an_exchanged_token_with_the_actor_header if {
	main.decision == {
		"allow": true,
		"status": 200,
		"reasons": [],
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
	} with input as request({
		"sub": "alice", "client_id": "svc-a", "scope": "accounts:read",
		"gty": "urn:ietf:params:oauth:grant-type:token-exchange",
		"act": {"sub": "svc-b"},
	})
		with pdp.revocation as not_revoked
}

test_allow_act_without_a_grant_type_claim_is_token_exchange if {
	d := main.decision with input as request({"sub": "alice", "act": {"sub": "svc-b"}}) with pdp.revocation as not_revoked
	d.allow
	d.module == "grants.token_exchange"
	d.upstream_headers["x-tokenguard-actor"] == "svc-b"
}

# Checklist 3: a nested act is history and never grants anything.
test_nested_act_gives_no_rights_only_the_outermost_actor_counts if {
	d := main.decision with input as request({"sub": "alice", "act": {"sub": "svc-b", "act": {"sub": "admin"}}}) with pdp.revocation as not_revoked
	d.allow
	d.upstream_headers == {
		"x-tokenguard-subject": "alice",
		"x-tokenguard-actor": "svc-b",
		"x-tokenguard-grant-type": "token_exchange",
	}
	every _, value in d.upstream_headers {
		not contains(value, "admin")
	}
}

test_deny_nested_act_does_not_stand_in_for_a_missing_outer_actor if {
	d := main.decision with input as request({"sub": "alice", "act": {"act": {"sub": "admin"}}}) with pdp.revocation as not_revoked
	codes(d) == ["token_claims_invalid"]
	d.upstream_headers == {}
}

test_deny_token_exchange_without_act_is_token_claims_invalid if {
	d := main.decision with input as request({"sub": "alice", "gty": "token_exchange"}) with pdp.revocation as not_revoked
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
		codes(main.decision) == ["token_claims_invalid"] with input as request({"sub": "alice", "act": act}) with pdp.revocation as not_revoked
	}
}

test_deny_dpop_bound_exchanged_token_as_bearer if {
	inp := object.union(
		request({"sub": "alice", "act": {"sub": "svc-b"}}),
		{"token": {"bound": {"method": "dpop", "jkt": "key-1"}}},
	)
	codes(main.decision) == ["dpop_bound_token_as_bearer"] with input as inp with pdp.revocation as not_revoked
}

# The store is asked through pdp.revocation; these tests are about other
# guardrails, so no token is revoked.
not_revoked(_) := {"revoked": false}
