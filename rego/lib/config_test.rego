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
