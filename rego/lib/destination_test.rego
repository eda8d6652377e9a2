package tokenguard.lib.destination_test

import data.tokenguard.lib.client
import data.tokenguard.lib.destination
import data.tokenguard.lib.destination_reference
import data.tokenguard.lib.route
import data.tokenguard.lib.route_reference

aud := "https://api.example.com"

message(broker, operation, dest) := {
	"message": {"broker": broker, "operation": operation, "destination": dest, "remote_ip": "203.0.113.7"},
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
		"claims": {"sub": "alice", "client_id": "web", "aud": aud, "gty": "authorization_code"},
	},
}

table := [
	{"name": "publish orders", "broker": "nats", "destination": "orders.*", "operations": ["publish"], "audience": aud, "scopes": ["orders:write"]},
	{"name": "read orders", "broker": "nats", "destination": "orders.>", "operations": ["subscribe"], "scopes": ["orders:read"], "grant_types": ["client_credentials"]},
	{"name": "orders exchange", "broker": "rabbitmq", "destination": "orders", "audience": "https://mq.example.com"},
]

# The routes never apply to a message: a table whose only route matches
# everything.
pdp_data := {"destinations": table, "routes": [{"name": "anything", "path": "/**"}]}

codes(rs) := {r.code | some r in rs}

reasons_for(inp, pdp) := rs if {
	rs := route.reasons with input as inp with data.pdp as pdp
		with pdp.route as route_reference.route
		with pdp.destination as destination_reference.destination
}

matched_name(inp, pdp) := n if {
	n := route.route.name with input as inp with data.pdp as pdp
		with pdp.route as route_reference.route
		with pdp.destination as destination_reference.destination
}

test_the_matched_destination_is_the_messages_route if {
	matched_name(message("nats", "publish", "orders.created"), pdp_data) == "publish orders"
	matched_name(message("nats", "subscribe", "orders.created"), pdp_data) == "read orders"
	matched_name(message("nats", "subscribe", "orders.eu.created"), pdp_data) == "read orders"
	matched_name(message("rabbitmq", "consume", "orders"), pdp_data) == "orders exchange"
	not matched_name(message("nats", "publish", "orders.eu.created"), pdp_data)
	not matched_name(message("kafka", "publish", "orders"), pdp_data)
}

test_what_the_destination_asks_for if {
	inp := message("nats", "publish", "orders.created")
	route.scopes == ["orders:write"] with input as inp with data.pdp as pdp_data with pdp.destination as destination_reference.destination
	route.audience == aud with input as inp with data.pdp as pdp_data with pdp.destination as destination_reference.destination
}

test_deny_a_message_without_a_destination_is_destination_unknown_never_route_unknown if {
	reasons_for(message("nats", "publish", "stock.x"), pdp_data) == {{
		"code": "destination_unknown",
		"status": 403,
		"error": "insufficient_scope",
		"message": "no destination for publish on nats stock.x",
	}}
	codes(reasons_for(message("nats", "publish", "stock.x"), {})) == {"destination_unknown"}
}

test_unknown_destinations_deny_by_default_and_for_any_value_but_allow if {
	every setting in [{}, {"unknown_destinations": "deny"}, {"unknown_destinations": "Allow"}, {"unknown_destinations": true}, {"unknown_routes": "allow"}] {
		codes(reasons_for(message("nats", "publish", "x"), object.union(pdp_data, setting))) == {"destination_unknown"}
	}
	count(reasons_for(message("nats", "publish", "x"), object.union(pdp_data, {"unknown_destinations": "allow"}))) == 0
}

test_unknown_destinations_allow_leaves_http_routes_alone if {
	http := {
		"request": {"method": "GET", "host": "h", "path": "/x"},
		"token": message("nats", "publish", "x").token,
	}
	codes(reasons_for(http, {"routes": [], "unknown_destinations": "allow"})) == {"route_unknown"}
}

test_a_connect_is_not_matched_and_never_unknown if {
	inp := message("nats", "connect", "")
	count(reasons_for(inp, pdp_data)) == 0
	not matched_name(inp, pdp_data)
	route.scopes == [] with input as inp with data.pdp as pdp_data with pdp.destination as destination_reference.destination
	count(reasons_for(object.union(inp, {"message": {"destination": "stock.x"}}), pdp_data)) == 0
}

test_deny_a_destination_of_another_audience if {
	inp := message("rabbitmq", "publish", "orders")
	reasons_for(inp, pdp_data) == {{
		"code": "audience_mismatch",
		"status": 401,
		"error": "invalid_token",
		"message": "the token is not meant for https://mq.example.com",
	}}
	count(reasons_for(object.union(inp, {"token": {"claims": {"aud": ["https://mq.example.com"]}}}), pdp_data)) == 0
}

test_deny_a_grant_type_the_destination_is_not_open_to if {
	reasons_for(message("nats", "subscribe", "orders.x"), pdp_data) == {{
		"code": "grant_type_not_allowed",
		"status": 403,
		"error": "insufficient_scope",
		"message": "route \"read orders\" is not open to authorization_code tokens",
	}}
	client := object.union(message("nats", "subscribe", "orders.x"), {"token": {"claims": {"gty": "client_credentials", "sub": "web"}}})
	count(reasons_for(client, pdp_data)) == 0
}

test_deny_a_malformed_destination_table_as_a_policy_error if {
	every destinations in [
		[{"broker": "nats", "destination": "orders..x"}],
		[{"broker": "nats", "destination": "orders.>.x"}],
		[{"broker": "NATS", "destination": "orders"}],
		[{"broker": "rabbitmq", "destination": "a#"}],
		[{"broker": "kafka", "destination": "a*b"}],
		[{"broker": "nats"}],
		[{"broker": "nats", "destination": "orders", "operations": "publish"}],
		array.concat(table, ["not a destination"]),
	] {
		codes(reasons_for(message("nats", "publish", "orders.created"), {"destinations": destinations})) == {"policy_error"}
	}
	reasons_for(message("nats", "publish", "orders.created"), {"destinations": {"broker": "nats"}}) == {{
		"code": "policy_error",
		"status": 500,
		"message": "data.pdp.destinations is not an array",
	}}
}

test_a_broken_destination_never_lets_a_later_one_apply if {
	destinations := [{"broker": "nats", "destination": "orders.>.x", "scopes": ["admin"]}, {"broker": "nats", "destination": ">"}]
	not matched_name(message("nats", "publish", "orders.a.x"), {"destinations": destinations})
}

test_a_broken_destination_table_leaves_http_requests_and_connects_alone if {
	broken := {"destinations": [{"broker": "nats"}], "routes": [{"path": "/**"}]}
	http := {"request": {"method": "GET", "host": "h", "path": "/x"}, "token": message("nats", "publish", "x").token}
	count(reasons_for(http, broken)) == 0
	count(reasons_for(message("nats", "connect", ""), broken)) == 0
}

test_a_broken_route_table_leaves_messages_alone if {
	broken := {"destinations": table, "routes": [{"path": 1}]}
	count(reasons_for(message("nats", "publish", "orders.created"), broken)) == 0
}

test_path_parameters_never_apply_to_a_message if {
	count(route.parameter_reasons) == 0 with input as message("nats", "publish", "orders;x") with data.pdp as pdp_data
		with pdp.destination as destination_reference.destination
}

test_the_message_fields_are_read_as_strings if {
	destination.broker == "" with input as {"message": {"broker": 1}}
	destination.operation == "" with input as {"message": {}}
	destination.asked == "" with input as {"message": {"destination": ["orders"]}}
	not destination.message with input as {"request": {}}
	not destination.message with input as {"message": "nats"}
}

test_the_client_address_of_a_message_is_the_one_the_broker_saw if {
	client.ip == "203.0.113.7" with input as message("nats", "publish", "x")
	not client.ip with input as {"message": {"remote_ip": "not an address"}, "request": {"remote_ip": "198.51.100.1"}}
	client.ip == "198.51.100.1" with input as {"request": {"remote_ip": "198.51.100.1"}}
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_matched_destination_and_the_message if {
	route.explain == {
		"matched": "publish orders", "broker": "nats", "operation": "publish", "destination": "orders.created",
		"audience": aud, "token_audience": [aud], "grant_type": "authorization_code", "unknown_destinations": "deny",
	} with input as message("nats", "publish", "orders.created") with data.pdp as pdp_data
		with pdp.destination as destination_reference.destination
}

test_explain_of_a_connect_names_no_destination if {
	e := route.explain with input as message("nats", "connect", "") with data.pdp as pdp_data
		with pdp.destination as destination_reference.destination
	not "matched" in object.keys(e)
	not "destination" in object.keys(e)
	not "unknown_routes" in object.keys(e)
	e.operation == "connect"
}
