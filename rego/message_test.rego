# Whole decisions for messaging operations (input.message): the same
# guardrails as for an HTTP request, with the destination in the route's
# place. The policy data is this file's own: fixtures.policy_data with a
# destination table.
package tokenguard.message_test

import data.tokenguard.fixtures

destinations := [
	{
		"name": "publish orders", "broker": "nats", "destination": "orders.*", "operations": ["publish"],
		"audience": fixtures.aud, "scopes": ["accounts:write"],
	},
	{
		"name": "read orders", "broker": "nats", "destination": "orders.>", "operations": ["subscribe"],
		"audience": fixtures.aud, "scopes": ["accounts:read"],
		"authorization_details": {"type": "order_events", "actions": ["read"]},
	},
	{
		"name": "batch queue", "broker": "rabbitmq", "destination": "batch", "operations": ["consume"],
		"audience": fixtures.aud, "scopes": ["batch:run"], "grant_types": ["client_credentials"],
	},
]

pdp_data := fixtures.with_data({"destinations": destinations})

# message: a user's (alice, client web, scope accounts:read) message, from
# the address the broker saw; no request.
message(broker, operation, dest) := object.union(object.remove(fixtures.input_for(fixtures.user_claims("authorization_code")), ["request"]), {"message": {
	"broker": broker, "operation": operation, "destination": dest, "vhost": "/", "remote_ip": "203.0.113.7",
}})

subscribe := message("nats", "subscribe", "orders.created")

decide(inp) := fixtures.decide_with(inp, pdp_data)

test_allow_a_subscription_the_token_has_the_scope_for if {
	d := decide(subscribe)
	d.allow
	d.status == 200
	d.module == "grants.authorization_code"
	d.upstream_headers["x-tokenguard-scopes"] == "accounts:read"
	d.warnings == []
}

test_allow_a_subscription_with_a_wildcard_the_destination_covers if {
	decide(message("nats", "subscribe", "orders.>")).allow
	decide(message("nats", "subscribe", "orders.*")).allow
}

test_deny_a_publish_without_the_destinations_scope if {
	d := decide(message("nats", "publish", "orders.created"))
	fixtures.codes(d) == ["scope_insufficient"]
	d.status == 403
}

test_deny_a_message_for_no_destination if {
	d := decide(message("nats", "publish", "stock.created"))
	d.reasons == [{
		"code": "destination_unknown",
		"status": 403,
		"error": "insufficient_scope",
		"message": "no destination for publish on nats stock.created",
	}]
	fixtures.codes(decide(message("kafka", "subscribe", "orders.created"))) == ["destination_unknown"]
}

test_a_message_is_never_denied_for_lacking_an_http_route if {
	d := fixtures.decide_with(subscribe, object.union(pdp_data, {"routes": []}))
	d.allow
}

test_allow_unknown_destinations_when_the_data_says_so if {
	d := fixtures.decide_with(message("nats", "publish", "stock.created"), object.union(pdp_data, {"unknown_destinations": "allow"}))
	d.allow
}

test_destination_unknown_can_be_monitored if {
	monitored := object.union(pdp_data, {"modes": {"destination": "monitor"}})
	d := fixtures.decide_with(message("nats", "publish", "stock.created"), monitored)
	d.allow
	fixtures.warning_codes(d) == ["destination_unknown"]
	not fixtures.decide_with(message("nats", "publish", "stock.created"), object.union(pdp_data, {"modes": {"route": "monitor"}})).allow
}

test_allow_a_connect_without_matching_a_destination if {
	d := decide(message("nats", "connect", ""))
	d.allow
	d.upstream_headers["x-tokenguard-scopes"] == "accounts:read"
}

test_deny_a_connect_with_a_revoked_token if {
	d := decide(object.union(message("nats", "connect", ""), {"mock": {"revocation": {"revoked": true, "kind": "subject", "at": fixtures.now}}}))
	fixtures.codes(d) == ["subject_revoked"]
}

test_deny_a_connect_with_an_expired_lifetime_or_another_audience if {
	long := fixtures.with_claims(message("nats", "connect", ""), {"iat": fixtures.now_s - 60, "exp": fixtures.now_s + 7200})
	fixtures.codes(decide(long)) == ["lifetime_exceeded"]
	other := fixtures.with_claims(subscribe, {"aud": "https://other.example.com"})
	fixtures.codes(decide(other)) == ["audience_mismatch"]
}

test_scopes_are_restricted_by_environment_and_role_for_a_message if {
	writer := fixtures.with_claims(message("nats", "publish", "orders.created"), {"scope": "accounts:read accounts:write"})
	fixtures.codes(decide(writer)) == ["scope_restricted"]
	admin := fixtures.with_claims(writer, {"roles": ["admin"]})
	decide(admin).allow
}

test_deny_a_client_token_a_destination_is_closed_to_and_allow_its_own if {
	consume := message("rabbitmq", "consume", "batch")
	fixtures.codes(decide(consume)) == ["grant_type_not_allowed", "scope_insufficient"]
	client := object.union(consume, {"token": fixtures.token(fixtures.client_claims)})
	decide(client).allow
}

test_grant_intent_is_checked_against_the_destination if {
	fits := fixtures.with_claims(subscribe, {"authorization_details": [{"type": "order_events", "actions": ["read"]}]})
	decide(fits).allow
	other := fixtures.with_claims(subscribe, {"authorization_details": [{"type": "order_events", "actions": ["write"]}]})
	fixtures.codes(decide(other)) == ["grant_intent_mismatch"]
	unknown := fixtures.with_claims(subscribe, {"authorization_details": [{"type": "wire_transfer"}]})
	fixtures.codes(decide(unknown)) == ["grant_intent_mismatch"]
}

test_a_type_only_a_destination_knows_is_known_to_http_requests_too if {
	http := fixtures.with_claims(fixtures.input_for(fixtures.user_claims("authorization_code")), {"authorization_details": [
		{"type": "account_information", "actions": ["read"]},
		{"type": "order_events", "actions": ["read"]},
	]})
	decide(http).allow
}

test_deny_a_bound_token_or_a_client_that_must_bind_for_a_message if {
	dpop := object.union(subscribe, {"token": {"bound": {"method": "dpop", "jkt": "key-1"}}})
	fixtures.codes(decide(dpop)) == ["sender_constraint_required"]
	mtls := object.union(subscribe, {"token": {"bound": {"method": "mtls", "x5t#S256": "cert-1"}}})
	fixtures.codes(decide(mtls)) == ["sender_constraint_required"]
	required := object.union(pdp_data, {"clients": {"web": {"sender_constraint": "dpop"}}})
	d := fixtures.decide_with(message("nats", "connect", ""), required)
	fixtures.codes(d) == ["sender_constraint_required"]
	d.status == 401
}

test_the_network_guardrail_reads_the_address_the_broker_saw if {
	allowed := object.union(pdp_data, {"clients": {"web": {"allowed_cidrs": ["203.0.113.0/24"]}}})
	fixtures.decide_with(subscribe, allowed).allow
	elsewhere := object.union(pdp_data, {"clients": {"web": {"allowed_cidrs": ["10.0.0.0/8"]}}})
	fixtures.codes(fixtures.decide_with(subscribe, elsewhere)) == ["ip_not_allowed"]
}

test_the_fingerprint_compares_the_network_of_a_message_never_its_user_agent if {
	same_network := object.union(subscribe, {"mock": {"last_seen": fixtures.seen_from("203.0.113.99", "curl/8")}})
	decide(same_network).allow
	other_network := object.union(subscribe, {"mock": {"last_seen": fixtures.seen_from("198.51.100.7", "")}})
	fixtures.codes(decide(other_network)) == ["token_replay_suspected"]
}

test_a_broken_destination_table_is_a_policy_error_for_a_message if {
	broken := object.union(pdp_data, {"destinations": [{"broker": "nats", "destination": "orders..x"}]})
	d := fixtures.decide_with(subscribe, broken)
	fixtures.codes(d) == ["policy_error"]
	d.status == 500
	fixtures.decide_with(message("nats", "connect", ""), broken).allow
}

test_explain_of_a_message_names_its_destination if {
	e := [entry |
		some entry in data.tokenguard.main.explanation
		entry.guardrail == "route"
	] with input as subscribe with data.pdp as pdp_data
		with pdp.revocation as fixtures.revocation_mock
		with pdp.last_seen as fixtures.last_seen_mock
		with pdp.destination as data.tokenguard.lib.destination_reference.destination
	count(e) == 1
	e[0].outcome == "pass"
	e[0].values.matched == "read orders"
	e[0].values.destination == "orders.created"
}
