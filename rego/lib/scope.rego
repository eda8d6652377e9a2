# Guardrail: scope. The matched route's scopes (lib/route.rego) must all be
# in the token's *effective* scopes, which are also what the upstream gets in
# x-tokenguard-scopes (lib/upstream.rego):
#
#   effective = token scopes
#               ∩ the scopes the caller may use in input.environment
#               − the environment's frozen_scopes
#
# data.pdp.environments[input.environment]:
#   roles          {role: [scopes]}. Present: a user's scopes are limited to
#                  those of the roles in the token's "roles" and "groups"
#                  claims (each an array of strings or one string).
#                  Absent: users are not restricted by role.
#   default_roles  [roles] a user holds when the token has neither a roles
#                  nor a groups claim (default: none, so such a token keeps
#                  no scope in an environment with roles).
#   client_scopes  {client_id: [scopes]}. Present: a client-credentials
#                  token keeps only its client's scopes. Absent: client
#                  tokens are not restricted by role. Client-credentials
#                  tokens never have their roles or groups claims read
#                  (checklist J11), even when their sub looks like a user.
#   frozen_scopes  [scopes] nobody may use in this environment.
# An environment that is not configured restricts nothing.
#
# Reasons (mode "scope", see lib/mode.rego), both 403 insufficient_scope:
#   scope_insufficient  a required scope was never granted; the challenge
#                       names the route's scopes (scope="...")
#   scope_restricted    a required scope was granted but the environment
#                       took it away (frozen, or not allowed for the roles)
package tokenguard.lib.scope

import data.tokenguard.lib.client
import data.tokenguard.lib.config
import data.tokenguard.lib.grant
import data.tokenguard.lib.reason
import data.tokenguard.lib.route
import data.tokenguard.lib.token

modes := {
	"scope_insufficient": "scope",
	"scope_restricted": "scope",
}

default environment := {}

environment := env if {
	is_string(input.environment)
	env := config.pdp.environments[input.environment]
	is_object(env)
}

granted := {s | some s in token.scopes}

frozen := env_scopes.frozen

# environments: the scope settings of each environment of
# data.pdp.environments, read as `listed` reads them. Data only: a policy
# version reads them once, when it is activated; a request only looks its
# environment up (env_scopes).
environments := {name: settings |
	some name, env in config.pdp.environments
	is_object(env)
	settings := {
		"restricts_clients": "client_scopes" in object.keys(env),
		"restricts_users": "roles" in object.keys(env),
		"frozen": listed_in(env, "frozen_scopes"),
		"default_roles": listed_in(env, "default_roles"),
		"roles": keyed_lists(env, "roles"),
		"clients": keyed_lists(env, "client_scopes"),
	}
}

# keyed_lists: {key: listed_in(env, [name, key])} for the keys of the
# object at env[name]; {} when it is not an object (a key the caller looks
# up with a string then lists nothing, as listed does).
keyed_lists(env, name) := {key: listed_in(env, [name, key]) | some key, _ in env[name]} if {
	is_object(env[name])
} else := {}

# env_scopes: the scope settings of this request's environment; an unknown
# environment restricts nothing and freezes nothing.
default env_scopes := {
	"restricts_clients": false,
	"restricts_users": false,
	"frozen": set(),
	"default_roles": set(),
	"roles": {},
	"clients": {},
}

env_scopes := environments[input.environment]

# --- what the caller may use in this environment --------------------------

default client_token := false

client_token if grant.type == "client_credentials"

# restricted: the environment limits this caller's scopes, users by role and
# client tokens by client; `allowed` holds what the caller may use then.
restricted if {
	client_token
	env_scopes.restricts_clients
}

restricted if {
	not client_token
	env_scopes.restricts_users
}

allowed := object.get(env_scopes.clients, client.id, set()) if {
	client_token
} else := {s |
	some role in roles
	some s in object.get(env_scopes.roles, role, set())
}

# roles: the user's roles from the roles and groups claims, or the
# environment's default_roles when the token has neither claim.
roles := {r | some name in ["roles", "groups"]; some r in claim_values(token.claims[name])} if {
	count(token.claim_names & {"roles", "groups"}) > 0
} else := env_scopes.default_roles

claim_values(x) := {x} if is_string(x)

claim_values(x) := {s | some s in x; is_string(s)} if is_array(x)

# listed: the strings in the array at path of the environment; none when it
# is not an array (a broken setting never widens access).
listed(path) := listed_in(environment, path)

listed_in(env, path) := {s |
	value := object.get(env, path, [])
	is_array(value)
	some s in value
	is_string(s)
}

# --- effective scopes -------------------------------------------------------

effective_set := (granted & allowed) - frozen if {
	restricted
} else := granted - frozen

# effective: the effective scopes in the token's order, without repeats.
effective := [s |
	scopes := token.scopes
	kept := effective_set
	some i, s in scopes
	s in kept
	not s in array.slice(scopes, 0, i)
]

# --- reasons ---------------------------------------------------------------

required := {s | some s in route.scopes}

# scope_insufficient: required scopes that were never granted.
reasons contains object.union(reason.new("scope_insufficient", 403, msg), {"scope": concat(" ", route.scopes)}) if {
	never_granted := required - granted
	count(never_granted) > 0
	token.ok
	msg := sprintf("the token lacks the scope %s", [concat(" ", sort(never_granted))])
}

# scope_restricted: required scopes that were granted but are not effective
# (nothing to check without a required scope that was granted).
reasons contains reason.new("scope_restricted", 403, msg) if {
	wanted := required & granted
	count(wanted) > 0
	taken_away := wanted - effective_set
	count(taken_away) > 0
	token.ok
	msg := sprintf("the scope %s is not available to this caller in environment %q", [
		concat(" ", sort(taken_away)),
		input.environment,
	])
}

# --- explanation -------------------------------------------------------------

# explain: what this guardrail compared, for POST /v1/admin/explain and
# pdp explain (main.explanation). Never part of a decision; each key is
# left out when what it names is undefined.

explain["required"] := sort(required)

explain["granted"] := sort(granted)

explain["effective"] := effective

explain["frozen"] := sort(frozen)

explain["restricted"] if restricted

explain["environment"] := input.environment if is_string(input.environment)
