# Modes roll a guardrail out. data.pdp.modes[name] sets the mode of the
# guardrail called name; data.pdp.clients[client_id].modes[name] overrides
# it for one client. "enforce" (the default) denies; "monitor" lets the
# request through and reports the guardrail's reason codes as warnings.
# Any other value enforces: a broken setting never loosens a guardrail.
#
# A lib module opts in by declaring `modes`, {reason code: mode name}; main
# splits reasons into denials and warnings with it, in one place. Codes a
# module does not list, policy errors, and every reason of the token, grant
# and revocation guardrails are always enforced (main.always_enforced).
package tokenguard.lib.mode

import data.tokenguard.lib.client
import data.tokenguard.lib.config

# The mode names a module may use in its `modes`.
names := {
	"lifetime",
	"scope",
	"dpop",
	"mtls",
	"sender_constraint",
	"network",
	"fingerprint",
	"route",
	"destination",
	"grant_intent",
	"delegation",
	"refresh",
}

# monitored(name): the guardrail called name is in monitor mode for this
# request's client.
monitored(name) if {
	name in names
	setting(name) == "monitor"
}

# setting: the client's own setting when it has one, else the global one.
setting(name) := client.settings.modes[name] if {
	is_object(client.settings.modes)
	name in object.keys(client.settings.modes)
} else := config.pdp.modes[name] if {
	is_object(config.pdp.modes)
}
