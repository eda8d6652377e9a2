package tokenguard.lib.mode_test

import data.tokenguard.lib.mode

client(id) := {"token": {"present": true, "scheme": "bearer", "valid": true, "claims": {"sub": "x", "client_id": id}}}

test_enforce_by_default if {
	not mode.monitored("lifetime") with input as client("web") with data.pdp as {}
}

test_monitor_globally if {
	mode.monitored("lifetime") with input as client("web") with data.pdp as {"modes": {"lifetime": "monitor"}}
	not mode.monitored("scope") with input as client("web") with data.pdp as {"modes": {"lifetime": "monitor"}}
}

test_a_client_setting_overrides_the_global_one if {
	pdp_data := {"modes": {"lifetime": "monitor"}, "clients": {"strict": {"modes": {"lifetime": "enforce"}}, "lax": {"modes": {"scope": "monitor"}}}}
	not mode.monitored("lifetime") with input as client("strict") with data.pdp as pdp_data
	mode.monitored("lifetime") with input as client("other") with data.pdp as pdp_data
	mode.monitored("lifetime") with input as client("lax") with data.pdp as pdp_data
	mode.monitored("scope") with input as client("lax") with data.pdp as pdp_data
	not mode.monitored("scope") with input as client("strict") with data.pdp as pdp_data
}

test_anything_but_monitor_enforces if {
	every value in ["MONITOR", "off", "", true, null, ["monitor"]] {
		not mode.monitored("lifetime") with input as client("web") with data.pdp as {"modes": {"lifetime": value}}
		not mode.monitored("lifetime") with input as client("web") with data.pdp as {"modes": {"lifetime": "monitor"}, "clients": {"web": {"modes": {"lifetime": value}}}}
	}
}

test_only_known_mode_names_can_be_monitored if {
	every name in ["revocation", "token", "grant", "signature", "policy"] {
		not mode.monitored(name) with input as client("web") with data.pdp as {"modes": {name: "monitor"}}
	}
}

test_at_the_token_endpoint_the_client_is_the_refresh_tokens if {
	inp := {"token": {"present": false}, "token_endpoint": {"grant_type": "refresh_token", "refresh": {"valid": true, "client_id": "web"}}}
	mode.monitored("refresh") with input as inp with data.pdp as {"clients": {"web": {"modes": {"refresh": "monitor"}}}}
	unverified := json.patch(inp, [{"op": "replace", "path": "/token_endpoint/refresh/valid", "value": false}])
	not mode.monitored("refresh") with input as unverified with data.pdp as {"clients": {"web": {"modes": {"refresh": "monitor"}}}}
}
