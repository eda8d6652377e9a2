# Test fixtures shared by the *_test.rego files: policy data independent of
# the shipped data.json, requests and tokens per grant type, built-in mocks,
# and, for the grant modules, one passing and failing scenarios for each
# guardrail. Like every *_test.rego file, never loaded by the PDP.
package tokenguard.fixtures

import data.tokenguard.lib.destination_reference
import data.tokenguard.lib.route_reference
import data.tokenguard.main

# --- time --------------------------------------------------------------------

now := 1795000000000000000

now_s := 1795000000

# --- policy data ---------------------------------------------------------------

aud := "https://api.example.com"

user_grants := ["authorization_code", "refresh_token", "device_code", "token_exchange"]

policy_data := {
	"routes": [
		{
			"name": "read accounts", "methods": ["GET"], "host": "api.example.com", "path": "/v1/accounts/*",
			"audience": aud, "scopes": ["accounts:read"],
			"grant_types": array.concat(user_grants, ["client_credentials"]),
			"authorization_details": {"type": "account_information", "actions": ["read"]},
		},
		{
			"name": "write accounts", "methods": ["POST", "PUT"], "host": "api.example.com", "path": "/v1/accounts/*",
			"audience": aud, "scopes": ["accounts:write"],
		},
		{
			"name": "profile", "methods": ["GET"], "host": "api.example.com", "path": "/v1/me",
			"audience": aud, "grant_types": user_grants,
		},
		{
			"name": "batch", "methods": ["GET"], "host": "api.example.com", "path": "/v1/batch/**",
			"audience": aud, "grant_types": ["client_credentials"],
		},
	],
	"unknown_routes": "deny",
	"lifetimes": {
		"default": {"max_lifetime": "1h", "max_age": "1h"},
		"grant_types": {"client_credentials": {"max_lifetime": "15m"}},
		"clients": {"legacy-batch": {"max_lifetime": "5m"}},
	},
	"environments": {"prod": {
		"roles": {"user": ["accounts:read"], "admin": ["accounts:read", "accounts:write"]},
		"default_roles": ["user"],
		"client_scopes": {"billing": ["accounts:read", "batch:run"]},
		"frozen_scopes": ["accounts:close"],
	}},
	"clients": {},
	"token_endpoint": {"url": "https://as.example.com/token"},
}

# with_data: policy_data with patch merged in.
with_data(patch) := object.union(policy_data, patch)

# --- requests and tokens -----------------------------------------------------

request := {
	"method": "GET",
	"url": "https://api.example.com/v1/accounts/42",
	"scheme": "https",
	"host": "api.example.com",
	"port": 443,
	"path": "/v1/accounts/42",
	"query": {},
	"headers": {"user-agent": ["curl/8"]},
	"remote_ip": "203.0.113.7",
}

token(claims) := {
	"present": true,
	"scheme": "bearer",
	"valid": true,
	"source": "jwt",
	"hash": "h1",
	"issuer": "https://as.example.com",
	"claims": claims,
	"bound": {"method": "none"},
}

# times: issued 5 minutes ago, valid for 10 minutes.
times := {"iat": now_s - 300, "exp": now_s + 300}

user_claims(gty) := object.union(times, {
	"iss": "https://as.example.com", "aud": aud, "jti": "j1",
	"sub": "alice", "client_id": "web", "scope": "accounts:read", "gty": gty,
})

client_claims := object.union(times, {
	"iss": "https://as.example.com", "aud": aud, "jti": "j1",
	"sub": "billing", "client_id": "billing", "scope": "accounts:read batch:run", "gty": "client_credentials",
})

exchange_claims := object.union(user_claims("urn:ietf:params:oauth:grant-type:token-exchange"), {
	"client_id": "svc-a",
	"act": {"sub": "svc-b"},
})

input_for(claims) := {
	"now": now,
	"environment": "prod",
	"context": {},
	"request": request,
	"token": token(claims),
	"dpop": {"present": false, "valid": false},
}

# patched: inp with patch merged in (objects merge, other values replace).
patched(inp, patch) := object.union(inp, patch)

# with_claims: inp with claims merged into the token's claims.
with_claims(inp, claims) := patched(inp, {"token": {"claims": claims}})

# at: inp for another method and path on the same host.
at(inp, method, path) := patched(inp, {"request": {
	"method": method,
	"path": path,
	"url": concat("", ["https://api.example.com", path]),
}})

# --- built-in mocks ----------------------------------------------------------

# pdp.route is replaced by route_reference.route (lib/route_reference_test.rego),
# pdp.destination by destination_reference.destination.

not_revoked(_) := {"revoked": false}

never_seen(_) := x if {
	x := {}
	false
}

# The mocks decide uses read what to answer from input.mock, so that one
# helper serves every scenario: input.mock.revocation (default: not revoked)
# and input.mock.last_seen (default: never seen). Guardrails ignore it.
revocation_mock(_) := object.get(input, ["mock", "revocation"], {"revoked": false})

last_seen_mock(_) := input.mock.last_seen

# --- deciding ----------------------------------------------------------------

decide(inp) := decide_with(inp, policy_data)

decide_with(inp, pdp_data) := d if {
	d := main.decision with input as inp
		with data.pdp as pdp_data
		with pdp.revocation as revocation_mock
		with pdp.last_seen as last_seen_mock
		with pdp.route as route_reference.route
		with pdp.destination as destination_reference.destination
}

codes(d) := [r.code | some r in d.reasons]

warning_codes(d) := [w.code | some w in d.warnings]

# --- guardrail scenarios for the grant modules --------------------------------

# passes(base, g): base, changed to exercise guardrail g, is allowed.
passes(base, g) if {
	s := passing(base)[g]
	d := decide_with(s.input, s.data)
	d.allow
	d.warnings == []
}

# denies(base, g): every failing scenario of guardrail g is denied with
# exactly its codes.
denies(base, g) if {
	count(failing(base)[g]) > 0
	every s in failing(base)[g] {
		codes(decide_with(s.input, s.data)) == s.codes
	}
}

client_token(base) if base.token.claims.gty == "client_credentials"

client_of(base) := base.token.claims.client_id

# lifetime_limit: max_lifetime in seconds for the base token's grant.
default lifetime_limit(_) := 3600

lifetime_limit(base) := 900 if client_token(base)

dpop_bound := {"token": {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "key-1"}}}

passing(base) := {
	"sender": {"data": policy_data, "input": patched(base, object.union(dpop_bound, {"dpop": {"present": true, "valid": true, "jkt": "key-1"}}))},
	"revocation": {"data": policy_data, "input": patched(base, {"mock": {"revocation": {"revoked": false}}})},
	"lifetime": {"data": policy_data, "input": with_claims(base, {"iat": now_s - 3599, "exp": (now_s - 3599) + lifetime_limit(base)})},
	"route": {"data": policy_data, "input": base},
	"scope": {"data": policy_data, "input": scope_passing(base)},
	"intent": {"data": policy_data, "input": with_claims(base, {"authorization_details": [
		{"type": "account_information", "actions": ["read", "list"], "locations": [aud]},
	]})},
	"network": {
		"data": with_data({"clients": {client_of(base): {"allowed_cidrs": ["198.51.100.0/24", "203.0.113.0/24"]}}}),
		"input": base,
	},
	"fingerprint": {"data": policy_data, "input": patched(base, {"mock": {"last_seen": seen_from("203.0.113.99", "curl/8")}})},
	"delegation": {"data": policy_data, "input": with_claims(base, {"act": {"sub": "svc-b", "act": {"sub": "svc-c"}}})},
}

failing(base) := {
	"sender": [
		{"codes": ["dpop_required"], "data": policy_data, "input": patched(base, {"token": {"bound": {"method": "dpop", "jkt": "key-1"}}})},
		{"codes": ["dpop_binding_mismatch"], "data": policy_data, "input": patched(base, object.union(dpop_bound, {"dpop": {"present": true, "valid": true, "jkt": "key-2"}}))},
	],
	"revocation": [{"codes": ["subject_revoked"], "data": policy_data, "input": patched(base, {"mock": {"revocation": {"revoked": true, "kind": "subject", "at": now}}})}],
	"lifetime": [
		{"codes": ["lifetime_exceeded"], "data": policy_data, "input": with_claims(base, {"iat": now_s - 60, "exp": ((now_s - 60) + lifetime_limit(base)) + 1})},
		{"codes": ["token_too_old"], "data": with_data({"lifetimes": {"default": {"max_age": "5m"}}}), "input": with_claims(base, {"iat": now_s - 301})},
	],
	"route": [
		{"codes": ["route_unknown"], "data": policy_data, "input": at(base, "GET", "/v1/unknown")},
		{"codes": ["route_unknown"], "data": policy_data, "input": at(base, "DELETE", "/v1/accounts/42")},
		{"codes": ["audience_mismatch"], "data": policy_data, "input": with_claims(base, {"aud": "https://other.example.com"})},
		{"codes": ["grant_type_not_allowed"], "data": policy_data, "input": at(base, "GET", other_grants_route(base))},
	],
	"scope": [
		{"codes": ["scope_insufficient"], "data": policy_data, "input": with_claims(base, {"scope": "openid"})},
		{"codes": ["scope_restricted"], "data": policy_data, "input": with_claims(at(base, "POST", "/v1/accounts/42"), {"scope": "accounts:read accounts:write"})},
	],
	"intent": [
		{"codes": ["grant_intent_mismatch"], "data": policy_data, "input": with_claims(base, {"authorization_details": [{"type": "payment_initiation", "actions": ["read"]}]})},
		{"codes": ["grant_intent_mismatch"], "data": policy_data, "input": with_claims(base, {"authorization_details": [{"type": "account_information", "actions": ["list"]}]})},
	],
	"network": [{
		"codes": ["ip_not_allowed"],
		"data": with_data({"clients": {client_of(base): {"allowed_cidrs": ["10.20.0.0/16"]}}}),
		"input": base,
	}],
	"fingerprint": [
		{"codes": ["token_replay_suspected"], "data": policy_data, "input": patched(base, {"mock": {"last_seen": seen_from("198.51.100.7", "curl/8")}})},
		{"codes": ["token_replay_suspected"], "data": policy_data, "input": patched(base, {"mock": {"last_seen": seen_from("203.0.113.7", "Mozilla/5.0")}})},
	],
	"delegation": [{"codes": ["delegation_too_deep"], "data": policy_data, "input": with_claims(base, {"act": {"sub": "svc-b", "act": {"sub": "svc-c", "act": {"sub": "admin"}}}})}],
}

# scope_passing: a user with the admin role may write; a client's roles
# claim is never read, its client_scopes let it read.
scope_passing(base) := with_claims(base, {"scope": "openid accounts:read", "roles": ["admin"]}) if {
	client_token(base)
} else := with_claims(at(base, "POST", "/v1/accounts/42"), {"scope": "accounts:read accounts:write", "roles": ["admin"]})

# other_grants_route: a route the base token's grant type may not use.
default other_grants_route(_) := "/v1/batch/run"

other_grants_route(base) := "/v1/me" if client_token(base)

# seen_from: a stored fingerprint of a sighting from ip with user_agent.
seen_from(ip, user_agent) := {
	"first_seen": now - 600000000000,
	"last_seen": now - 60000000000,
	"ip": ip,
	"prefix": "",
	"ua_hash": crypto.sha256(user_agent),
	"count": 3,
}
