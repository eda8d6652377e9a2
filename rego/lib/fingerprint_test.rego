package tokenguard.lib.fingerprint_test

import data.tokenguard.lib.fingerprint

request(ip, user_agent) := {
	"request": {"method": "GET", "path": "/x", "remote_ip": ip, "headers": {"user-agent": [user_agent]}},
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "hash": "h1",
		"claims": {"sub": "alice", "client_id": "web"}, "bound": {"method": "none"},
	},
}

curl := crypto.sha256("curl/8")

seen(ip, ua_hash) := {"first_seen": 1, "last_seen": 2, "ip": ip, "prefix": "", "ua_hash": ua_hash, "count": 2}

never_seen(_) := x if {
	x := {}
	false
}

seen_v4(_) := seen("203.0.113.7", curl)

seen_v6(_) := seen("2001:db8:aa:bb00::1", curl)

seen_without_ip(_) := seen("", curl)

seen_without_user_agent(_) := seen("203.0.113.7", crypto.sha256(""))

# echo_hash: a fingerprint whose prefix is the hash it was asked about.
echo_hash(hash) := seen("203.0.113.7", curl) if hash == "h1"

codes(rs) := {r.code | some r in rs}

test_a_token_never_seen_passes if {
	count(fingerprint.reasons) == 0 with input as request("198.51.100.1", "other") with pdp.last_seen as never_seen with data.pdp as {}
}

test_the_same_network_and_user_agent_pass if {
	count(fingerprint.reasons) == 0 with input as request("203.0.113.7", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as {}
	count(fingerprint.reasons) == 0 with input as request("203.0.113.250", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as {}
	count(fingerprint.reasons) == 0 with input as request("2001:db8:aa:bbff::9", "curl/8") with pdp.last_seen as seen_v6 with data.pdp as {}
}

test_the_store_is_asked_by_the_token_hash if {
	count(fingerprint.reasons) == 0 with input as request("203.0.113.7", "curl/8") with pdp.last_seen as echo_hash with data.pdp as {}
	fingerprint.seen.ip == "203.0.113.7" with input as request("203.0.113.7", "curl/8") with pdp.last_seen as echo_hash with data.pdp as {}
}

test_deny_drift_to_another_ipv4_prefix if {
	fingerprint.reasons == {{
		"code": "token_replay_suspected",
		"status": 401,
		"error": "invalid_token",
		"message": "the bearer token was last used from another network",
	}} with input as request("203.0.114.7", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as {}
}

test_deny_drift_to_another_ipv6_prefix if {
	codes(fingerprint.reasons) == {"token_replay_suspected"} with input as request("2001:db8:aa:cc00::1", "curl/8") with pdp.last_seen as seen_v6 with data.pdp as {}
	codes(fingerprint.reasons) == {"token_replay_suspected"} with input as request("203.0.113.7", "curl/8") with pdp.last_seen as seen_v6 with data.pdp as {}
}

test_the_prefix_lengths_come_from_data if {
	wide := {"fingerprint": {"ipv4_prefix": 16, "ipv6_prefix": 32}}
	count(fingerprint.reasons) == 0 with input as request("203.0.200.1", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as wide
	count(fingerprint.reasons) == 0 with input as request("2001:db8:ff::1", "curl/8") with pdp.last_seen as seen_v6 with data.pdp as wide
	narrow := {"fingerprint": {"ipv4_prefix": 32}}
	codes(fingerprint.reasons) == {"token_replay_suspected"} with input as request("203.0.113.8", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as narrow
}

test_deny_drift_to_another_user_agent if {
	fingerprint.reasons == {{
		"code": "token_replay_suspected",
		"status": 401,
		"error": "invalid_token",
		"message": "the bearer token was last used by another user agent",
	}} with input as request("203.0.113.7", "python-requests/2.32") with pdp.last_seen as seen_v4 with data.pdp as {}
	no_ua := json.remove(request("203.0.113.7", ""), ["request/headers/user-agent"])
	codes(fingerprint.reasons) == {"token_replay_suspected"} with input as no_ua with pdp.last_seen as seen_v4 with data.pdp as {}
	count(fingerprint.reasons) == 0 with input as no_ua with pdp.last_seen as seen_without_user_agent with data.pdp as {}
}

test_network_and_user_agent_drift_are_two_reasons if {
	count(fingerprint.reasons) == 2 with input as request("198.51.100.1", "other") with pdp.last_seen as seen_v4 with data.pdp as {}
}

test_without_a_remote_ip_only_the_user_agent_counts if {
	no_ip := json.remove(request("", "curl/8"), ["request/remote_ip"])
	count(fingerprint.reasons) == 0 with input as no_ip with pdp.last_seen as seen_v4 with data.pdp as {}
	codes(fingerprint.reasons) == {"token_replay_suspected"} with input as object.union(no_ip, {"request": {"headers": {"user-agent": ["other"]}}}) with pdp.last_seen as seen_v4 with data.pdp as {}
	count(fingerprint.reasons) == 0 with input as request("198.51.100.1", "curl/8") with pdp.last_seen as seen_without_ip with data.pdp as {}
}

test_sender_constrained_tokens_are_not_fingerprinted if {
	dpop := object.union(request("198.51.100.1", "other"), {"token": {"scheme": "dpop", "bound": {"method": "dpop", "jkt": "k"}}})
	count(fingerprint.reasons) == 0 with input as dpop with pdp.last_seen as seen_v4 with data.pdp as {}
	mtls := object.union(request("198.51.100.1", "other"), {"token": {"bound": {"method": "mtls", "x5t#S256": "c"}}})
	count(fingerprint.reasons) == 0 with input as mtls with pdp.last_seen as seen_v4 with data.pdp as {}
}

test_tokens_without_a_hash_or_not_verified_are_not_looked_up if {
	count(fingerprint.reasons) == 0 with input as json.remove(request("198.51.100.1", "x"), ["token/hash"]) with pdp.last_seen as seen_v4 with data.pdp as {}
	count(fingerprint.reasons) == 0 with input as object.union(request("198.51.100.1", "x"), {"token": {"valid": false}}) with pdp.last_seen as seen_v4 with data.pdp as {}
}

test_a_malformed_prefix_setting_is_a_policy_error if {
	every value in [33, -1, "24", 24.5] {
		codes(fingerprint.reasons) == {"policy_error"} with input as request("203.0.113.7", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as {"fingerprint": {"ipv4_prefix": value}}
	}
}

# --- explain ---------------------------------------------------------------

test_explain_names_where_the_token_was_last_seen if {
	fingerprint.explain == {"applies": true, "last_seen_ip": "203.0.113.7", "network_bits": 24, "other_network": true} with input as request("198.51.100.1", "curl/8") with pdp.last_seen as seen_v4 with data.pdp as {}
}
