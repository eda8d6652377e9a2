# Headers passed to the upstream on allow. Grant modules build theirs from
# these; the values come only from verified top-level claims. The scopes are
# the effective ones (lib/scope.rego): what the environment and the caller's
# roles leave of the token's scopes.
package tokenguard.lib.upstream

import data.tokenguard.lib.scope
import data.tokenguard.lib.token

# client_headers: the calling client, its scopes and the grant type; never a
# user (checklist J11).
client_headers(grant_type) := {name: value |
	some name, value in {
		"x-tokenguard-client-id": token.client_id,
		"x-tokenguard-scopes": concat(" ", scope.effective),
		"x-tokenguard-grant-type": grant_type,
	}
	value != ""
}

# user_headers: client_headers plus the user the token was issued for.
user_headers(grant_type) := object.union(client_headers(grant_type), subject_header)

default subject_header := {}

subject_header := {"x-tokenguard-subject": token.subject} if token.subject != ""
