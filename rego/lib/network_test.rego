package tokenguard.lib.network_test

import data.tokenguard.lib.network

from(ip) := {
	"request": {"method": "GET", "path": "/x", "remote_ip": ip},
	"token": {"present": true, "scheme": "bearer", "valid": true, "claims": {"sub": "svc", "client_id": "payments-job"}},
}

cidrs(list) := {"clients": {"payments-job": {"allowed_cidrs": list}}}

codes(rs) := {r.code | some r in rs}

test_an_address_inside_an_allowed_network_passes if {
	count(network.reasons) == 0 with input as from("10.20.3.4") with data.pdp as cidrs(["10.20.0.0/16"])
	count(network.reasons) == 0 with input as from("2001:db8::7") with data.pdp as cidrs(["10.20.0.0/16", "2001:db8::/32"])
	count(network.reasons) == 0 with input as from("192.0.2.1") with data.pdp as cidrs(["192.0.2.1"])
}

test_deny_an_address_outside_every_allowed_network if {
	network.reasons == {{
		"code": "ip_not_allowed",
		"status": 403,
		"error": "insufficient_scope",
		"message": "client \"payments-job\" may not be used from this network",
	}} with input as from("10.21.0.1") with data.pdp as cidrs(["10.20.0.0/16"])
	codes(network.reasons) == {"ip_not_allowed"} with input as from("::ffff:10.21.0.1") with data.pdp as cidrs(["10.20.0.0/16"])
}

test_deny_a_request_without_a_remote_ip_for_a_pinned_client if {
	inp := json.remove(from("10.20.3.4"), ["request/remote_ip"])
	codes(network.reasons) == {"ip_not_allowed"} with input as inp with data.pdp as cidrs(["10.20.0.0/16"])
	codes(network.reasons) == {"ip_not_allowed"} with input as from("not-an-ip") with data.pdp as cidrs(["10.20.0.0/16"])
}

test_a_malformed_setting_denies_rather_than_opening_up if {
	every setting in [[], "10.20.0.0/16", ["10.20.0.0/33", "banana", 7], {"cidr": "10.20.0.0/16"}] {
		codes(network.reasons) == {"ip_not_allowed"} with input as from("10.20.3.4") with data.pdp as cidrs(setting)
	}
	count(network.reasons) == 0 with input as from("10.20.3.4") with data.pdp as cidrs(["banana", "10.20.0.0/16"])
}

test_clients_without_allowed_cidrs_are_not_restricted if {
	count(network.reasons) == 0 with input as from("198.51.100.1") with data.pdp as {"clients": {"payments-job": {"sender_constraint": "dpop"}}}
	count(network.reasons) == 0 with input as from("198.51.100.1") with data.pdp as cidrs(null)
	count(network.reasons) == 0 with input as from("198.51.100.1") with data.pdp as {}
	other := object.union(from("198.51.100.1"), {"token": {"claims": {"client_id": "web"}}})
	count(network.reasons) == 0 with input as other with data.pdp as cidrs(["10.20.0.0/16"])
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_address_and_the_allowed_networks if {
	network.explain == {"client_id": "payments-job", "configured": true, "allowed_cidrs": ["10.20.0.0/16"], "remote_ip": "10.21.0.1"} with input as from("10.21.0.1") with data.pdp as cidrs(["10.20.0.0/16"])
	network.explain == {"client_id": "payments-job", "remote_ip": "10.21.0.1"} with input as from("10.21.0.1") with data.pdp as {}
}
