package natsauth

import (
	"strings"
	"testing"
)

func TestValidPattern(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    bool
	}{
		{"ok/literal subject", "orders.created", true},
		{"ok/one-token wildcard", "orders.*.status", true},
		{"ok/tail wildcard", "orders.>", true},
		{"ok/everything", ">", true},
		{"ok/inbox", "_INBOX.>", true},
		{"fail/empty", "", false},
		{"fail/empty token", "orders..created", false},
		{"fail/trailing dot", "orders.", false},
		{"fail/tail wildcard not last", "orders.>.x", false},
		{"fail/wildcard inside a token", "orders.cre*", false},
		{"fail/white space", "orders created", false},
		{"fail/control character", "orders.\x01", false},
		{"fail/too long", strings.Repeat("a.", MaxSubjectBytes/2) + "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validPattern(tt.pattern); got != tt.want {
				t.Errorf("validPattern(%q) = %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"ok/same literal", "orders.created", "orders.created", true},
		{"ok/wildcard matches a literal", "orders.*", "orders.created", true},
		{"ok/tail matches deeper subjects", "orders.>", "orders.eu.created", true},
		{"ok/tail against a wildcard", ">", "*.created", true},
		{"ok/two wildcards in different places", "orders.*.status", "orders.eu.*", true},
		{"fail/other literal", "orders.created", "orders.deleted", false},
		{"fail/other prefix", "orders.>", "audit.>", false},
		{"fail/tail needs one more token", "orders.>", "orders", false},
		{"fail/different depth", "orders.*", "orders.eu.created", false},
		{"fail/wildcard against a shorter subject", "orders.*.status", "orders.eu", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overlap(tt.a, tt.b); got != tt.want {
				t.Errorf("overlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := overlap(tt.b, tt.a); got != tt.want {
				t.Errorf("overlap(%q, %q) = %v, want %v (symmetric)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}
