package tokenguard.grants.client_credentials_test

import data.tokenguard.grants.client_credentials
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

client_headers := {
	"x-tokenguard-client-id": "billing",
	"x-tokenguard-scopes": "accounts:read",
	"x-tokenguard-grant-type": "client_credentials",
}

test_applies_the_sender_constraint if {
	"sender" in client_credentials.guardrails
}

test_allow_a_client_token_with_client_headers_only if {
	main.decision == {
		"allow": true,
		"status": 200,
		"reasons": [],
		"headers": {},
		"upstream_headers": client_headers,
		"grant_type": "client_credentials",
		"module": "grants.client_credentials",
	} with input as request({"sub": "billing", "client_id": "billing", "scope": "accounts:read", "gty": "client_credentials"}) with pdp.revocation as not_revoked
}

test_allow_sub_equal_to_client_id_is_a_client_token if {
	d := main.decision with input as request({"sub": "billing", "client_id": "billing", "scope": "accounts:read"}) with pdp.revocation as not_revoked
	d.module == "grants.client_credentials"
	d.upstream_headers == client_headers
}

# J11: a client whose id equals a user id gets no user rights.
test_client_token_whose_sub_is_a_user_id_carries_no_subject if {
	d := main.decision with input as request({"sub": "alice", "client_id": "alice", "scope": "accounts:read"}) with pdp.revocation as not_revoked
	d.grant_type == "client_credentials"
	not "x-tokenguard-subject" in object.keys(d.upstream_headers)
	d.upstream_headers["x-tokenguard-client-id"] == "alice"
}

test_client_credentials_token_with_a_user_sub_carries_no_subject if {
	d := main.decision with input as request({"sub": "alice", "client_id": "billing", "scope": "accounts:read", "gty": "client_credentials"}) with pdp.revocation as not_revoked
	d.allow
	d.upstream_headers == client_headers
}

test_roles_and_groups_claims_are_ignored if {
	c := {
		"sub": "billing", "client_id": "billing", "scope": "accounts:read",
		"roles": ["admin"], "groups": ["ops"], "realm_access": {"roles": ["admin"]},
	}
	main.decision.upstream_headers == client_headers with input as request(c) with pdp.revocation as not_revoked
}

test_deny_dpop_bound_client_token_without_a_proof if {
	inp := object.union(
		request({"sub": "billing", "client_id": "billing"}),
		{"token": {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "key-1"}}},
	)
	[r.code | some r in main.decision.reasons] == ["dpop_proof_invalid"] with input as inp with pdp.revocation as not_revoked
}

test_deny_mtls_bound_client_token_with_another_certificate if {
	inp := object.union(
		request({"sub": "billing", "client_id": "billing"}),
		{
			"token": {"bound": {"method": "mtls", "x5t#S256": "cert-1"}},
			"request": {"client_cert": {"x5t#S256": "cert-2"}},
		},
	)
	[r.code | some r in main.decision.reasons] == ["mtls_binding_mismatch"] with input as inp with pdp.revocation as not_revoked
}

test_allow_mtls_bound_client_token_with_its_certificate if {
	inp := object.union(
		request({"sub": "billing", "client_id": "billing"}),
		{
			"token": {"bound": {"method": "mtls", "x5t#S256": "cert-1"}},
			"request": {"client_cert": {"x5t#S256": "cert-1"}},
		},
	)
	main.decision.allow with input as inp with pdp.revocation as not_revoked
}

# The store is asked through pdp.revocation; these tests are about other
# guardrails, so no token is revoked.
not_revoked(_) := {"revoked": false}
