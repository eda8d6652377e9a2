package tokenguard.lib.config_test

import data.tokenguard.lib.config

test_empty_data_gives_the_fallbacks if {
	config.get_string(["realm"], "tokenguard") == "tokenguard" with data.pdp as {}
	config.get_strings(["dpop", "algs"], ["ES256"]) == ["ES256"] with data.pdp as {}
}

test_missing_or_malformed_data_pdp_gives_the_fallbacks if {
	config.pdp == {} with data.pdp as "not an object"
	config.get_string(["realm"], "tokenguard") == "tokenguard" with data.pdp as ["x"]
}

test_settings_are_read_from_data_pdp if {
	config.get_string(["realm"], "tokenguard") == "api" with data.pdp as {"realm": "api"}
	config.get_strings(["dpop", "algs"], ["ES256"]) == ["EdDSA"] with data.pdp as {"dpop": {"algs": ["EdDSA"]}}
}

test_a_string_setting_of_another_type_gives_the_fallback if {
	config.get_string(["realm"], "tokenguard") == "tokenguard" with data.pdp as {"realm": 42}
	config.get_string(["dpop", "x"], "d") == "d" with data.pdp as {"dpop": "not an object"}
}

test_a_null_list_setting_gives_the_fallback if {
	config.get_strings(["list"], ["a"]) == ["a"] with data.pdp as {"list": null}
}

test_a_malformed_list_setting_gives_no_values_not_the_fallback if {
	config.get_strings(["list"], ["a"]) == [] with data.pdp as {"list": "a"}
	config.get_strings(["list"], ["a"]) == ["b"] with data.pdp as {"list": ["b", 1, null]}
}

test_durations_in_nanoseconds if {
	config.duration_ns(["d"], "1h") == 3600000000000 with data.pdp as {}
	config.duration_ns(["d"], "1h") == 90000000000 with data.pdp as {"d": "1m30s"}
	config.duration_ns(["d"], "1h") == 1500000000 with data.pdp as {"d": "1.5s"}
	config.duration_ns(["d"], "1h") == 3600000000000 with data.pdp as {"d": null}
}

test_a_malformed_duration_is_undefined_not_the_fallback if {
	every value in ["1 h", "1d", "-1h", "0s", "0", "", 60, "99999999h", "1h1m1s1ms", "h"] {
		not config.duration_ns(["d"], "1h") with data.pdp as {"d": value}
	}
}

test_integers_within_a_range if {
	config.get_int(["n"], 2, 1, 10) == 2 with data.pdp as {}
	config.get_int(["n"], 2, 1, 10) == 7 with data.pdp as {"n": 7}
	every value in [0, 11, 1.5, "7", true] {
		not config.get_int(["n"], 2, 1, 10) with data.pdp as {"n": value}
	}
}
