package tokenguard.grants.refresh_token_test

import data.tokenguard.grants.refresh_token
import data.tokenguard.main

claims := {"sub": "alice", "client_id": "web", "scope": "read write", "gty": "refresh_token"}

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

test_applies_the_sender_constraint if {
	"sender" in refresh_token.guardrails
}

test_allow_a_valid_refresh_token_token_with_user_headers if {
	main.decision == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"headers": {},
		"upstream_headers": {
			"x-tokenguard-subject": "alice",
			"x-tokenguard-client-id": "web",
			"x-tokenguard-scopes": "read write",
			"x-tokenguard-grant-type": "refresh_token",
		},
		"grant_type": "refresh_token",
		"module": "grants.refresh_token",
	} with input as request(claims) with pdp.revocation as not_revoked
}

test_deny_dpop_bound_token_as_bearer if {
	inp := object.union(request(claims), {"token": {"bound": {"method": "dpop", "jkt": "key-1"}}})
	[r.code | some r in main.decision.reasons] == ["dpop_bound_token_as_bearer"] with input as inp with pdp.revocation as not_revoked
	main.decision.module == "grants.refresh_token" with input as inp with pdp.revocation as not_revoked
}

test_deny_when_switched_off_in_data if {
	d := main.decision with input as request(claims) with pdp.revocation as not_revoked
		with data.pdp as {"grant_types": {"allowed": []}}
	not d.allow
	d.grant_type == "refresh_token"
	d.module == ""
	[r.code | some r in d.reasons] == ["grant_type_not_allowed"]
}

# The store is asked through pdp.revocation; these tests are about other
# guardrails, so no token is revoked.
not_revoked(_) := {"revoked": false}
