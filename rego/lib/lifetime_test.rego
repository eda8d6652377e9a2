package tokenguard.lib.lifetime_test

import data.tokenguard.lib.lifetime

now_s := 1795000000

# token: a user token (or a client token for client "billing") issued
# age seconds ago, living lives seconds.
token(client_id, gty, age, lives) := {
	"now": now_s * 1000000000,
	"token": {
		"present": true, "scheme": "bearer", "valid": true, "bound": {"method": "none"},
		"claims": {"sub": "alice", "client_id": client_id, "gty": gty, "iat": now_s - age, "exp": (now_s - age) + lives},
	},
}

user(age, lives) := token("web", "authorization_code", age, lives)

codes(rs) := {r.code | some r in rs}

lifetimes := {"lifetimes": {
	"default": {"max_lifetime": "1h", "max_age": "30m"},
	"grant_types": {"client_credentials": {"max_lifetime": "15m"}, "device_code": {"max_age": "10m"}},
	"clients": {"legacy-batch": {"max_lifetime": "5m"}, "slow-tv": {"max_age": "2h"}},
}}

test_a_token_within_its_limits_passes if {
	count(lifetime.reasons) == 0 with input as user(60, 3600) with data.pdp as lifetimes
	count(lifetime.reasons) == 0 with input as user(1800, 3600) with data.pdp as lifetimes
}

test_deny_a_token_living_longer_than_max_lifetime if {
	lifetime.reasons == {{
		"code": "lifetime_exceeded",
		"status": 401,
		"error": "invalid_token",
		"message": "the token lives 3601s, more than the 3600s allowed",
	}} with input as user(60, 3601) with data.pdp as lifetimes
}

test_deny_a_token_used_longer_after_issue_than_max_age if {
	lifetime.reasons == {{
		"code": "token_too_old",
		"status": 401,
		"error": "invalid_token",
		"message": "the token was issued 1801s ago, more than the 1800s allowed",
	}} with input as user(1801, 3600) with data.pdp as lifetimes
}

test_both_limits_can_fail_at_once if {
	codes(lifetime.reasons) == {"lifetime_exceeded", "token_too_old"} with input as user(7200, 86400) with data.pdp as lifetimes
}

# Each limit resolves on its own: client, then grant type, then default.
test_resolution_order_client_over_grant_type_over_default if {
	# default: 1h lifetime
	lifetime.setting("max_lifetime") == [["default", "max_lifetime"], "1h"] with input as user(0, 0) with data.pdp as lifetimes

	# grant type: client credentials get 15m
	lifetime.setting("max_lifetime") == [["grant_types", "client_credentials", "max_lifetime"], "15m"] with input as token("billing", "client_credentials", 0, 0) with data.pdp as lifetimes
	codes(lifetime.reasons) == {"lifetime_exceeded"} with input as token("billing", "client_credentials", 0, 901) with data.pdp as lifetimes

	# client over grant type: legacy-batch gets 5m even as a client token
	lifetime.setting("max_lifetime") == [["clients", "legacy-batch", "max_lifetime"], "5m"] with input as token("legacy-batch", "client_credentials", 0, 0) with data.pdp as lifetimes
	codes(lifetime.reasons) == {"lifetime_exceeded"} with input as token("legacy-batch", "client_credentials", 0, 301) with data.pdp as lifetimes

	# the client sets only max_lifetime: its max_age still comes from the default
	lifetime.setting("max_age") == [["default", "max_age"], "30m"] with input as token("legacy-batch", "client_credentials", 0, 0) with data.pdp as lifetimes
}

test_a_client_setting_may_be_looser_than_its_grant_type if {
	# slow-tv's 2h max_age wins over device_code's 10m
	count(lifetime.reasons) == 0 with input as token("slow-tv", "device_code", 3600, 3600) with data.pdp as lifetimes
	codes(lifetime.reasons) == {"token_too_old"} with input as token("other-tv", "device_code", 601, 3600) with data.pdp as lifetimes
}

test_built_in_limits_without_data if {
	lifetime.setting("max_lifetime") == [[], "1h"] with input as user(0, 0) with data.pdp as {}
	count(lifetime.reasons) == 0 with input as user(3600, 3600) with data.pdp as {}
	codes(lifetime.reasons) == {"lifetime_exceeded", "token_too_old"} with input as user(3601, 3601) with data.pdp as {}
}

test_a_malformed_limit_is_a_policy_error_never_a_looser_fallback if {
	every value in ["forever", "-5m", "0s", 300, "", "1h1m1s1ms", "9999999h"] {
		pdp_data := {"lifetimes": {"default": {"max_lifetime": "1h"}, "clients": {"web": {"max_lifetime": value}}}}
		lifetime.reasons == {{
			"code": "policy_error",
			"status": 500,
			"message": "data.pdp.lifetimes.clients.web.max_lifetime is not a positive duration",
		}} with input as user(0, 60) with data.pdp as pdp_data
	}
}

test_go_durations_with_several_parts if {
	count(lifetime.reasons) == 0 with input as user(0, 5400) with data.pdp as {"lifetimes": {"default": {"max_lifetime": "1h30m"}}}
	codes(lifetime.reasons) == {"lifetime_exceeded"} with input as user(0, 5401) with data.pdp as {"lifetimes": {"default": {"max_lifetime": "1.5h"}}}
}

test_a_token_without_iat_or_exp_is_not_checked_for_them if {
	inp := {"now": now_s * 1000000000, "token": {"present": true, "scheme": "bearer", "valid": true, "claims": {"sub": "alice"}}}
	count(lifetime.reasons) == 0 with input as inp with data.pdp as lifetimes
	only_iat := object.union(inp, {"token": {"claims": {"iat": now_s - 7200}}})
	codes(lifetime.reasons) == {"token_too_old"} with input as only_iat with data.pdp as lifetimes
}

test_no_lifetime_reasons_for_a_token_that_failed_verification if {
	inp := object.union(user(7200, 86400), {"token": {"valid": false}})
	count(lifetime.reasons) == 0 with input as inp with data.pdp as lifetimes
}

# --- valid_until -----------------------------------------------------------

test_valid_until_is_the_first_instant_the_token_is_too_old if {
	# issued 60 s ago, max_age 30 m: too old from iat + 1800 s + 1 ns
	lifetime.valid_until == (((now_s - 60) + 1800) * 1000000000) + 1 with input as user(60, 3600) with data.pdp as lifetimes
}

test_valid_until_at_the_limit_is_the_next_nanosecond if {
	lifetime.valid_until == (now_s * 1000000000) + 1 with input as user(1800, 3600) with data.pdp as lifetimes
}

test_valid_until_follows_the_limit_that_applies if {
	inp := token("slow-tv", "device_code", 60, 3600)
	lifetime.valid_until == (((now_s - 60) + 7200) * 1000000000) + 1 with input as inp with data.pdp as lifetimes
}

test_valid_until_is_undefined_for_a_token_already_too_old if {
	not lifetime.valid_until with input as user(1801, 3600) with data.pdp as lifetimes
}

test_valid_until_is_undefined_for_an_invalid_token if {
	not lifetime.valid_until with input as json.patch(user(60, 3600), [{"op": "replace", "path": "/token/valid", "value": false}]) with data.pdp as lifetimes
}

# --- explain ---------------------------------------------------------------

test_explain_names_the_lifetime_and_the_limit_and_where_the_limit_is_set if {
	lifetime.explain == {
		"lifetime_s": 3601, "max_lifetime_s": 3600, "max_lifetime_from": "data.pdp.lifetimes.default.max_lifetime",
		"age_s": 60, "max_age_s": 1800, "max_age_from": "data.pdp.lifetimes.default.max_age",
	} with input as user(60, 3601) with data.pdp as lifetimes
	lifetime.explain.max_lifetime_from == "data.pdp.lifetimes.clients.legacy-batch.max_lifetime" with input as token("legacy-batch", "client_credentials", 0, 0) with data.pdp as lifetimes
	lifetime.explain.max_lifetime_from == "built-in" with input as user(0, 0) with data.pdp as {}
}

test_explain_leaves_out_what_a_token_without_iat_cannot_say if {
	inp := {"now": now_s * 1000000000, "token": {"present": true, "scheme": "bearer", "valid": true, "claims": {"sub": "alice"}}}
	lifetime.explain == {
		"max_lifetime_s": 3600, "max_lifetime_from": "data.pdp.lifetimes.default.max_lifetime",
		"max_age_s": 1800, "max_age_from": "data.pdp.lifetimes.default.max_age",
	} with input as inp with data.pdp as lifetimes
}
