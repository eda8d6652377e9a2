package tokenguard.lib.reason_test

import data.tokenguard.lib.reason

test_new_reason_gets_the_challenge_error_of_its_status if {
	reason.new("x", 400, "m") == {"code": "x", "status": 400, "message": "m", "error": "invalid_request"}
	reason.new("x", 401, "m").error == "invalid_token"
	reason.new("x", 403, "m").error == "insufficient_scope"
}

test_new_reason_with_another_status_has_no_challenge_error if {
	reason.new("x", 500, "m") == {"code": "x", "status": 500, "message": "m"}
}

test_unauthenticated_reason_is_401_without_challenge_error if {
	reason.unauthenticated("token_missing", "m") == {"code": "token_missing", "status": 401, "message": "m"}
}

test_with_error_replaces_the_challenge_error if {
	reason.with_error(reason.new("x", 401, "m"), "invalid_dpop_proof").error == "invalid_dpop_proof"
}
