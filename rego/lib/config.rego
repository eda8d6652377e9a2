# Policy data (data.pdp) read with defaults, so that an empty, missing or
# malformed data.pdp still gives a working policy. Guardrails read their
# settings only through these functions.
package tokenguard.lib.config

default pdp := {}

pdp := settings if {
	settings := data.pdp
	is_object(settings)
}

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
	value := object.get(pdp, path, null)
	is_array(value)
	some s in value
	is_string(s)
]

# duration_ns returns the Go-style duration at path ("15m", "1h30m") in
# nanoseconds, or fallback's when the setting is absent (or null). It is
# undefined when the setting is not a positive duration of at most three
# parts of up to five digits each: the caller turns that into a policy_error,
# never into a default (a broken limit never loosens one). Checking the shape
# first keeps time.parse_duration_ns from raising a strict built-in error.
duration_ns(path, fallback) := as_duration_ns(or_fallback(object.get(pdp, path, null), fallback))

# as_duration_ns: a duration string in nanoseconds, as duration_ns checks it.
as_duration_ns(value) := ns if {
	is_string(value)
	regex.match(`^([0-9]{1,5}(\.[0-9]{1,9})?(ns|us|µs|μs|ms|s|m|h)){1,3}$`, value)
	ns := time.parse_duration_ns(value)
	ns > 0
}

# get_int returns the integer at path, or fallback when the setting is absent
# (or null); undefined when it is not an integer within [low, high].
get_int(path, fallback, low, high) := value if {
	value := or_fallback(object.get(pdp, path, null), fallback)
	is_number(value)
	value == round(value)
	value >= low
	value <= high
}

or_fallback(null, fallback) := fallback

or_fallback(value, _) := value if value != null
