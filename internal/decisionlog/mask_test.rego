package system.log_test

import data.system.log

event(request) := {"decision_id": "d1", "input": {"request": request}}

test_credential_headers_erased if {
	masks := log.mask with input as event({"headers": {
		"authorization": ["Bearer x"], "dpop": ["p"], "cookie": ["c"],
		"x-api-key": ["k"], "x-refresh-token": ["r"], "user-agent": ["curl/8"],
	}})
	masks == {
		"/input/request/headers/authorization", "/input/request/headers/dpop",
		"/input/request/headers/cookie", "/input/request/headers/x-api-key",
		"/input/request/headers/x-refresh-token",
	}
}

test_plain_headers_kept if {
	masks := log.mask with input as event({"headers": {"user-agent": ["curl/8"], "accept": ["*/*"]}})
	count(masks) == 0
}

test_unspellable_credential_header_erases_all_headers if {
	masks := log.mask with input as event({"headers": {"x-token/evil": ["t"], "user-agent": ["curl/8"]}})
	masks == {"/input/request/headers"}
}

test_credential_query_erases_query_and_url if {
	masks := log.mask with input as event({"url": "https://a.example/?access_token=t", "query": {"access_token": ["t"]}})
	masks == {"/input/request/query", "/input/request/url"}
}

test_plain_query_kept if {
	masks := log.mask with input as event({"url": "https://a.example/?page=2", "query": {"page": ["2"]}})
	count(masks) == 0
}

test_every_spelling_of_a_credential_name_erased if {
	masks := log.mask with input as event({"headers": {
		"x-api_key": ["k"], "x-functions-key": ["k"], "x-pwd": ["p"], "x-sessid": ["s"],
		"referer": ["https://a.example/cb?code=c"], "x-envoy-original-path": ["/x?access_token=t"],
		"x-original-url": ["/x?access_token=t"], "user-agent": ["curl/8"],
	}})
	masks == {
		"/input/request/headers/x-api_key", "/input/request/headers/x-functions-key",
		"/input/request/headers/x-pwd", "/input/request/headers/x-sessid",
		"/input/request/headers/referer", "/input/request/headers/x-envoy-original-path",
		"/input/request/headers/x-original-url",
	}
	every name in ["api-key", "key", "auth", "PHPSESSID", "pwd", "pass", "cookie", "bearer"] {
		log.mask == {"/input/request/query", "/input/request/url"} with input as event({"url": "u", "query": {name: ["s"]}})
	}
}
