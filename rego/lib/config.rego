# Policy data (data.pdp) read with defaults, so that an empty, missing or
# malformed data.pdp still gives a working policy. Guardrails read their
# settings only through these functions.
package tokenguard.lib.config

default pdp := {}

pdp := data.pdp if is_object(data.pdp)

# get_string returns the string at path, or fallback when it is absent or
# not a string.
get_string(path, fallback) := value if {
	value := object.get(pdp, path, fallback)
	is_string(value)
} else := fallback

# get_strings returns the strings of the array at path: fallback when the
# setting is absent (or null), and no strings at all when it is set to
# something that is not an array (a broken setting never widens access).
get_strings(path, fallback) := fallback if {
	object.get(pdp, path, null) == null
} else := [s |
	some s in object.get(pdp, path, null)
	is_string(s)
] if {
	is_array(object.get(pdp, path, null))
} else := []
