package tokenguard.token_endpoint_test

import data.tokenguard.token_endpoint

request(method, url) := {"request": {"method": method, "url": url}, "token_endpoint": {"grant_type": "client_credentials"}}

configured(url) := {"token_endpoint": {"url": url}}

test_applies_the_refresh_guardrail if {
	token_endpoint.guardrails == {"refresh"}
	token_endpoint.upstream_headers == {}
}

test_a_post_to_the_configured_url_passes if {
	count(token_endpoint.reasons) == 0 with input as request("POST", "https://as.example.com/token") with data.pdp as configured("https://as.example.com/token")
	count(token_endpoint.reasons) == 0 with input as request("POST", "https://as.example.com/token?x=1") with data.pdp as configured("https://AS.example.com:443/token")
	count(token_endpoint.reasons) == 0 with input as request("POST", "http://as.test/oauth/token") with data.pdp as configured("http://as.test:80/oauth/token")
}

test_deny_token_endpoint_input_on_any_other_request if {
	every inp in [
		request("GET", "https://as.example.com/token"),
		request("POST", "https://as.example.com/token/x"),
		request("POST", "https://as.example.com/TOKEN"),
		request("POST", "https://api.example.com/token"),
		request("POST", "https://as.example.com:8443/token"),
		{"token_endpoint": {}},
	] {
		token_endpoint.reasons == {{
			"code": "policy_error",
			"status": 500,
			"message": "token endpoint input for a request that is not a POST to data.pdp.token_endpoint.url",
		}} with input as inp with data.pdp as configured("https://as.example.com/token")
	}
	count(token_endpoint.reasons) == 1 with input as request("POST", "https://as.example.com/token") with data.pdp as {}
}
