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
