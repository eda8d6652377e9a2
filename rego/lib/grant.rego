# Guardrail: grant intent. Derives the grant type a token was issued under
# and refuses grant types that are deprecated, unknown or switched off in
# data.pdp.grant_types.allowed. main picks the grant module from `type`.
package tokenguard.lib.grant

import data.tokenguard.lib.config
import data.tokenguard.lib.reason
import data.tokenguard.lib.token

# The grant types that have a module under rego/grants.
known := {"authorization_code", "client_credentials", "refresh_token", "device_code", "token_exchange"}

# Values of the grant type claim and the grant type each one means.
aliases := {
	"authorization_code": "authorization_code",
	"client_credentials": "client_credentials",
	"refresh_token": "refresh_token",
	"device_code": "device_code",
	"urn:ietf:params:oauth:grant-type:device_code": "device_code",
	"token_exchange": "token_exchange",
	"urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
}

# Deprecated by the OAuth 2.0 Security BCP (RFC 9700 §2.4, §2.1.2).
deprecated := {"password", "implicit"}

claim_name := config.get_string(["grant_type_claim"], "gty")

allowed := {t | some t in config.get_strings(["grant_types", "allowed"], known)}

claimed if claim_name in token.claim_names

# type: the grant type, or "" when the token is not verified or its grant
# type is not one of `known`. Without the claim: an `act` claim means token
# exchange (RFC 8693), sub == client_id means client credentials (RFC 9068
# §2.2), anything else a user's authorization code grant.
default type := ""

type := aliases[token.claims[claim_name]] if {
	input.token.valid == true # part of token.ok, for OPA's rule index
	token.ok
	claimed
} else := unclaimed_type if {
	input.token.valid == true
	token.ok
	not claimed
}

unclaimed_type := "token_exchange" if {
	"act" in token.claim_names
} else := "client_credentials" if {
	token.client_id != ""
	token.subject == token.client_id
} else := "authorization_code"

# applies: a grant module decides this request.
applies if {
	type != ""
	type in allowed
}

# --- reasons ---------------------------------------------------------------

# Every reason needs token.ok (type != "" too), of which the input comparison
# is a part that OPA's rule index checks without evaluating the clause.

reasons contains reason.new("grant_type_not_allowed", 401, msg) if {
	input.token.valid == true
	token.claims[claim_name] in deprecated
	token.ok
	msg := sprintf("grant type %q is deprecated and not allowed", [token.claims[claim_name]])
}

reasons contains reason.new("grant_type_not_allowed", 401, msg) if {
	input.token.valid == true
	value := token.claims[claim_name]
	not aliases[value]
	not value in deprecated
	token.ok
	msg := sprintf("grant type %s is not supported", [json.marshal(value)])
}

reasons contains reason.new("grant_type_not_allowed", 401, msg) if {
	input.token.valid == true
	type != ""
	not type in allowed
	msg := sprintf("grant type %q is not enabled", [type])
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["grant_type"] := type

explain["claim"] := claim_name

explain["claimed"] := claimed

explain["allowed"] := sort(allowed)
