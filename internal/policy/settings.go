package policy

import (
	"fmt"
	"time"

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
	s := Settings{RefreshMaxAge: DefaultRefreshMaxAge}
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
