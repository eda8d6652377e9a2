package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/destination"
	"github.com/tokenguard/pdp/internal/uri"
)

// Settings are the parts of the policy data (data.pdp) that Go needs before
// evaluation: which requests are token-endpoint requests whose refresh
// tokens are tracked. They change with the policy, atomically.
type Settings struct {
	// TokenEndpoint is the normalised token endpoint URL (no query), or "".
	TokenEndpoint string
	// RefreshMaxAge is how long a refresh-token family may live.
	RefreshMaxAge time.Duration
	// RefreshReuse is data.pdp.token_endpoint.refresh_reuse read as
	// rego/lib/refresh.rego reads it: RefreshRevokeSession (also for an
	// absent or unknown value), RefreshRevokeSubject or RefreshDeny.
	RefreshReuse string
	// RefreshReuseGrace is data.pdp.token_endpoint.refresh_reuse_grace:
	// how long after a refresh token was first presented the same client
	// from the same network may present it once more (a retry after a
	// lost response) without that being reuse; 0 (default) never.
	RefreshReuseGrace time.Duration
	// NetworkPrefixes are data.pdp.fingerprint.ipv4_prefix/ipv6_prefix
	// (default 24/56): the prefix that counts as one network, for the
	// reuse grace as for the fingerprint guardrail.
	IPv4Prefix, IPv6Prefix int
	// Destinations are the well-formed entries of data.pdp.destinations,
	// in order (rego/lib/destination.rego), so that a transport can list
	// what a broker may be granted. The table a message is matched
	// against is the policy's: a version with a malformed entry matches
	// nothing (and config_errors refuses it).
	Destinations []Destination
	// Reuse says whether and on what the version's decisions may be
	// reused; it comes from the modules, not from the data.
	Reuse Reuse
}

// Destination is an entry of data.pdp.destinations.
type Destination struct {
	Name        string // "" when it has none
	Broker      string // "nats", "rabbitmq", ...
	Destination string // in the broker's syntax (internal/destination)
	// Operations are the operations it is matched for: all of
	// destination.Operations when the entry lists none.
	Operations []string
}

// DefaultRefreshMaxAge applies when data.pdp.token_endpoint.refresh_max_age
// is not set.
const DefaultRefreshMaxAge = 30 * 24 * time.Hour

// MaxRefreshReuseGrace bounds data.pdp.token_endpoint.refresh_reuse_grace;
// the recommendation is 2–5 s.
const MaxRefreshReuseGrace = time.Minute

// The network prefixes of rego/lib/fingerprint.rego's defaults.
const (
	DefaultIPv4Prefix = 24
	DefaultIPv6Prefix = 56
)

// settingsFrom reads Settings from the data document; a malformed setting
// is an error, so that such a policy is never activated.
func settingsFrom(data map[string]any) (Settings, error) {
	s := Settings{RefreshMaxAge: DefaultRefreshMaxAge, RefreshReuse: RefreshRevokeSession,
		IPv4Prefix: DefaultIPv4Prefix, IPv6Prefix: DefaultIPv6Prefix}
	pdp, _ := data["pdp"].(map[string]any)
	// As rego/lib/config.rego's get_int: a number in range, else the
	// default (the fingerprint guardrail reports a malformed one).
	if fp, ok := pdp["fingerprint"].(map[string]any); ok {
		s.IPv4Prefix = prefixBits(fp["ipv4_prefix"], 32, DefaultIPv4Prefix)
		s.IPv6Prefix = prefixBits(fp["ipv6_prefix"], 128, DefaultIPv6Prefix)
	}
	s.Destinations = destinationsFrom(pdp["destinations"])
	te, ok := pdp["token_endpoint"].(map[string]any)
	if !ok {
		return s, nil
	}
	if raw, ok := te["url"]; ok {
		str, ok := raw.(string)
		if !ok {
			return s, fmt.Errorf("data.pdp.token_endpoint.url is not a string")
		}
		u, err := uri.Normalize(str)
		if err != nil {
			return s, fmt.Errorf("data.pdp.token_endpoint.url: %w", err)
		}
		u.RawQuery = ""
		s.TokenEndpoint = u.String()
	}
	if v, _ := te["refresh_reuse"].(string); v == RefreshRevokeSubject || v == RefreshDeny {
		s.RefreshReuse = v
	}
	if raw, ok := te["refresh_max_age"]; ok {
		str, _ := raw.(string)
		d, err := time.ParseDuration(str)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("data.pdp.token_endpoint.refresh_max_age is not a positive duration")
		}
		s.RefreshMaxAge = d
	}
	if raw, ok := te["refresh_reuse_grace"]; ok {
		str, _ := raw.(string)
		d, err := time.ParseDuration(str)
		if err != nil || d < 0 || d > MaxRefreshReuseGrace {
			return s, fmt.Errorf("data.pdp.token_endpoint.refresh_reuse_grace is not a duration between 0s and %s", MaxRefreshReuseGrace)
		}
		s.RefreshReuseGrace = d
	}
	return s, nil
}

// prefixBits reads a prefix length: a whole number between 0 and max, else
// def.
func prefixBits(v any, max, def int) int {
	var n float64
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return def
		}
		n = f
	case float64:
		n = x
	case int:
		n = float64(x)
	case int64:
		n = float64(x)
	default:
		return def
	}
	if n != float64(int(n)) || n < 0 || n > float64(max) {
		return def
	}
	return int(n)
}

// Values of data.pdp.token_endpoint.refresh_reuse.
const (
	RefreshRevokeSession = "revoke_session"
	RefreshRevokeSubject = "revoke_subject"
	RefreshDeny          = "deny"
)

// RefreshTarget is what revoking a refresh token of session sid and
// subject sub cuts off under the refresh_reuse setting, by the rule of
// rego/lib/refresh.rego's target: the session (revoke_session, when the
// token names one), else the subject (revoke_session or revoke_subject),
// else nothing (deny, or no usable value). kind is "session" or "subject".
func (s Settings) RefreshTarget(sid, sub string) (kind, value string, ok bool) {
	policy := s.RefreshReuse
	if policy != RefreshRevokeSubject && policy != RefreshDeny {
		policy = RefreshRevokeSession
	}
	switch {
	case policy == RefreshRevokeSession && headerSafe(sid):
		return "session", sid, true
	case policy != RefreshDeny && headerSafe(sub):
		return "subject", sub, true
	}
	return "", "", false
}

// headerSafe is rego/lib/token.rego's header_safe: a non-empty string
// without control characters.
func headerSafe(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// destinationsFrom reads the well-formed entries of data.pdp.destinations
// (as the matcher judges them), in order; none when it is not an array.
func destinationsFrom(v any) []Destination {
	entries, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []Destination
	for _, e := range entries {
		val, err := ast.InterfaceToValue(e)
		if err != nil {
			continue
		}
		obj, ok := val.(ast.Object)
		if !ok || !destination.WellFormed(obj) {
			continue
		}
		m := e.(map[string]any)
		d := Destination{Broker: m["broker"].(string), Destination: m["destination"].(string)}
		d.Name, _ = m["name"].(string)
		if ops, ok := m["operations"].([]any); ok {
			d.Operations = make([]string, 0, len(ops))
			for _, op := range ops {
				d.Operations = append(d.Operations, op.(string))
			}
		} else {
			d.Operations = slices.Clone(destination.Operations)
		}
		out = append(out, d)
	}
	return out
}
