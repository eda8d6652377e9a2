# Guardrail: grant intent (RFC 9396 rich authorization requests). A token
# that carries authorization_details may do only what they describe, on top
# of (never instead of) its scopes: the two are never unioned.
#
#   - authorization_details must be an array of objects, each with a
#     non-empty string "type" (else token_claims_invalid, always enforced);
#   - every type must be one some route or destination knows
#     (data.pdp.routes[_] or data.pdp.destinations[_]
#     .authorization_details.type), else grant_intent_mismatch;
#   - on a route (for a message: the destination it matches, see
#     lib/route.rego) with authorization_details {"type", "actions"}, one entry
#     of that type must list all the route's actions and, when it has
#     "locations", the route's audience; else grant_intent_mismatch.
# A token without authorization_details (or with []) is judged by its
# scopes alone; so is one on a route that declares none.
#
# Reason (mode "grant_intent", see lib/mode.rego):
#   grant_intent_mismatch  403 insufficient_scope
package tokenguard.lib.intent

import data.tokenguard.lib.destination
import data.tokenguard.lib.reason
import data.tokenguard.lib.route
import data.tokenguard.lib.token

modes := {"grant_intent_mismatch": "grant_intent"}

carried if "authorization_details" in token.claim_names

details := token.claims.authorization_details if is_array(token.claims.authorization_details)

well_formed(entry) if {
	is_object(entry)
	is_string(entry.type)
	entry.type != ""
}

known_types := {t |
	some r in array.concat(route.routes, destination.destinations)
	t := r.authorization_details.type
	is_string(t)
}

# wanted: what the matched route needs; undefined when it needs nothing.
wanted := route.route.authorization_details if is_object(route.route.authorization_details)

wanted_actions := {a | some a in object.get(wanted, "actions", [])}

fits(entry) if {
	entry.type == wanted.type
	every a in wanted_actions {
		a in actions(entry)
	}
	locations_fit(entry)
}

# actions: the entry's actions; none when it has no array of them.
default actions(_) := []

actions(entry) := entry.actions if is_array(entry.actions)

locations_fit(entry) if object.get(entry, "locations", null) == null

locations_fit(entry) if {
	is_array(entry.locations)
	route.audience != ""
	route.audience in entry.locations
}

# --- reasons ---------------------------------------------------------------

# Each clause first asks whether the token carries the claim at all, which
# settles it for most tokens.

reasons contains reason.new("token_claims_invalid", 401, msg) if {
	carried
	token.ok
	not details
	msg := "the authorization_details claim is not an array"
}

reasons contains reason.new("token_claims_invalid", 401, msg) if {
	some entry in details
	token.ok
	not well_formed(entry)
	msg := "an authorization_details entry is not an object with a string type"
}

unknown_types := {entry.type |
	some entry in details
	well_formed(entry)
	not entry.type in known_types
}

reasons contains reason.new("grant_intent_mismatch", 403, msg) if {
	carried
	token.ok
	some unknown in unknown_types
	msg := sprintf("authorization_details type %q is not known", [unknown])
}

reasons contains reason.new("grant_intent_mismatch", 403, msg) if {
	count(details) > 0
	token.ok
	count(unknown_types) == 0
	wanted
	not any_fits
	msg := sprintf("no authorization_details entry of type %q allows %s", [
		wanted.type,
		concat(" ", sort(wanted_actions)),
	])
}

any_fits if {
	some entry in details
	fits(entry)
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["carried"] if carried

explain["required_type"] := wanted.type if wanted

explain["required_actions"] := sort(wanted_actions) if wanted

explain["token_types"] := sort({entry.type | some entry in details; is_string(entry.type)}) if details
