package policy

import (
	"encoding/json"
	"testing"
)

// RefreshTarget follows rego/lib/refresh.rego's target rule, which the
// token endpoint applies on reuse; RFC 7009 revocation of a refresh token
// applies the same rule.
func TestRefreshTargetFollowsTheRefreshReuseRule(t *testing.T) {
	for _, tt := range []struct {
		name, data, sid, sub string
		kind, value          string
	}{
		{"ok/default: the session", `{}`, "s1", "alice", "session", "s1"},
		{"ok/revoke_session: the session", `{"refresh_reuse":"revoke_session"}`, "s1", "alice", "session", "s1"},
		{"ok/revoke_session without a session: the subject", `{"refresh_reuse":"revoke_session"}`, "", "alice", "subject", "alice"},
		{"ok/revoke_subject: the subject even with a session", `{"refresh_reuse":"revoke_subject"}`, "s1", "alice", "subject", "alice"},
		{"ok/an unknown value is revoke_session", `{"refresh_reuse":"revoke_everything"}`, "s1", "alice", "session", "s1"},
		{"ok/deny: nothing", `{"refresh_reuse":"deny"}`, "s1", "alice", "", ""},
		{"fail/a session with a control character is not a target", `{}`, "s1\r\nX: y", "alice", "subject", "alice"},
		{"fail/nothing usable", `{}`, "", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var te map[string]any
			if err := json.Unmarshal([]byte(tt.data), &te); err != nil {
				t.Fatal(err)
			}
			s, err := settingsFrom(map[string]any{"pdp": map[string]any{"token_endpoint": te}})
			if err != nil {
				t.Fatal(err)
			}
			kind, value, ok := s.RefreshTarget(tt.sid, tt.sub)
			if kind != tt.kind || value != tt.value || ok != (tt.kind != "") {
				t.Errorf("RefreshTarget = %q %q %v, want %q %q", kind, value, ok, tt.kind, tt.value)
			}
		})
	}
	if kind, _, _ := (Settings{}).RefreshTarget("s", "u"); kind != "session" {
		t.Errorf("without an active policy: %q, want session", kind)
	}
}
