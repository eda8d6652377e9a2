package policy

import (
	"fmt"
	"time"
	"unicode"

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
	// Reuse says whether and on what the version's decisions may be
	// reused; it comes from the modules, not from the data.
	Reuse Reuse
}

// DefaultRefreshMaxAge applies when data.pdp.token_endpoint.refresh_max_age
// is not set.
const DefaultRefreshMaxAge = 30 * 24 * time.Hour

// settingsFrom reads Settings from the data document; a malformed setting
// is an error, so that such a policy is never activated.
func settingsFrom(data map[string]any) (Settings, error) {
	s := Settings{RefreshMaxAge: DefaultRefreshMaxAge, RefreshReuse: RefreshRevokeSession}
	pdp, _ := data["pdp"].(map[string]any)
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
	return s, nil
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
