package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

func TestRefreshReuseGrace(t *testing.T) {
	data := strings.Replace(guardrailData, `"refresh_max_age": "720h"`, `"refresh_max_age": "720h", "refresh_reuse_grace": "5s"`, 1)
	if data == guardrailData {
		t.Fatal("the guardrail data has no refresh_max_age to put the grace beside")
	}
	dir := policyWithData(t, data)
	tb := newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = dir
		for i := range c.Issuers {
			c.Issuers[i].Audiences = append(c.Issuers[i].Audiences, "https://billing.example.com")
		}
	})
	es := tb.issuers["ES256"]
	from := func(rt, clientID, ip string) map[string]any {
		r := refreshGrant(rt)
		r["body"] = strings.Replace(r["body"].(string), "client_id=web-app", "client_id="+clientID, 1)
		return with(r, "remote_ip", ip)
	}
	tests := []struct {
		name  string
		retry map[string]any // the second presentation, after one from web-app at 203.0.113.7
		allow bool
	}{
		{"ok/a retry from the same client and network within the grace is let through once", nil, true},
		{"ok/another address of the same network is the same network", map[string]any{"client_id": "web-app", "ip": "203.0.113.99"}, true},
		{"fail/a retry from another network is reuse", map[string]any{"client_id": "web-app", "ip": "198.51.100.7"}, false},
		{"fail/a retry by another client is reuse", map[string]any{"client_id": "other-app", "ip": "203.0.113.7"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := "sess-grace-" + string(rune('a'+i))
			rt := mintRefresh(t, es, sid)
			if d := tb.decide(t, map[string]any{}, from(rt, "web-app", "203.0.113.7")); !d.Allow || hasWarning(d, "refresh_token_retried") {
				t.Fatalf("first presentation: %+v", d)
			}
			client, ip := "web-app", "203.0.113.7"
			if tt.retry != nil {
				client, ip = tt.retry["client_id"].(string), tt.retry["ip"].(string)
			}
			d := tb.decide(t, map[string]any{}, from(rt, client, ip))
			if !tt.allow {
				if d.Allow || len(d.codes()) == 0 || d.codes()[0] != "refresh_token_reused" {
					t.Fatalf("retry: allow=%v reasons=%v, want refresh_token_reused", d.Allow, d.codes())
				}
				return
			}
			if !d.Allow || !hasWarning(d, "refresh_token_retried") {
				t.Fatalf("retry: allow=%v reasons=%v warnings=%v, want an allow with the warning refresh_token_retried", d.Allow, d.codes(), d.Warnings)
			}
			// Once only: a third presentation is reuse, and revokes the session.
			d = tb.decide(t, map[string]any{}, from(rt, client, ip))
			if d.Allow || len(d.codes()) == 0 || d.codes()[0] != "refresh_token_reused" {
				t.Fatalf("second retry: allow=%v reasons=%v, want refresh_token_reused", d.Allow, d.codes())
			}
			access := tb.mint(t, "ES256", map[string]any{"sid": sid, "iat": time.Now().Add(-time.Minute).Unix()})
			check(t, tb.decide(t, bearer(access), nil), want{false, 401, "session_revoked"})
		})
	}
}
