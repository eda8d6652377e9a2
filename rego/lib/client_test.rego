package tokenguard.lib.client_test

import data.tokenguard.lib.client

with_client(id) := {"token": {"present": true, "scheme": "bearer", "valid": true, "claims": {"sub": "x", "client_id": id}}}

test_the_client_is_the_tokens_client_id if {
	client.id == "web" with input as with_client("web")
	client.id == "" with input as {"token": {"present": true, "valid": true, "scheme": "bearer", "claims": {"sub": "x"}}}
	client.id == "" with input as object.union(with_client("web"), {"token": {"valid": false}})
}

test_settings_come_from_data_pdp_clients if {
	client.settings == {"allowed_cidrs": []} with input as with_client("web") with data.pdp as {"clients": {"web": {"allowed_cidrs": []}}}
	client.settings == {} with input as with_client("mobile") with data.pdp as {"clients": {"web": {"allowed_cidrs": []}}}
	client.settings == {} with input as with_client("web") with data.pdp as {"clients": {"web": "x"}}
	client.settings == {} with input as with_client("web") with data.pdp as {"clients": ["web"]}
}

test_the_remote_ip_must_be_an_address if {
	client.ip == "203.0.113.7" with input as {"request": {"remote_ip": "203.0.113.7"}}
	client.ip == "2001:db8::1" with input as {"request": {"remote_ip": "2001:db8::1"}}
	every bad in ["", "203.0.113.0/24", "999.1.1.1", "localhost", 7, null] {
		not client.ip with input as {"request": {"remote_ip": bad}}
	}
	not client.ip with input as {"request": {}}
}
