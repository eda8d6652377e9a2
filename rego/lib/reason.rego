# Reasons are what guardrails produce: one object per problem found.
#
#   {"code": "token_expired", "message": "...", "status": 401,
#    "error": "invalid_token"}                  # RFC 6750 / RFC 9449 error
#
# "error" is the challenge error code; it is left out when the client simply
# did not authenticate (RFC 6750 §3.1). A reason may also carry "scope" (the
# scopes a 403 needs), which the challenge reports.
package tokenguard.lib.reason

# new builds a reason whose challenge error follows from its status.
new(code, status, message) := {"code": code, "status": status, "message": message, "error": error} if {
	error := errors[status]
} else := {"code": code, "status": status, "message": message}

# unauthenticated builds a 401 reason without a challenge error: no token,
# or a scheme the PDP does not understand.
unauthenticated(code, message) := {"code": code, "status": 401, "message": message}

# with_error replaces the challenge error of a reason.
with_error(r, error) := object.union(r, {"error": error})

# errors: the challenge error by status; other statuses have none.
errors := {
	400: "invalid_request",
	401: "invalid_token",
	403: "insufficient_scope",
}
