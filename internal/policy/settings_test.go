package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSettingsRefreshReuseGrace(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		grace   time.Duration
		v4, v6  int
		wantErr string
	}{
		{name: "ok/absent is no grace", data: `{"pdp":{"token_endpoint":{}}}`, v4: 24, v6: 56},
		{name: "ok/a few seconds", data: `{"pdp":{"token_endpoint":{"refresh_reuse_grace":"3s"}}}`, grace: 3 * time.Second, v4: 24, v6: 56},
		{name: "ok/the fingerprint's networks", data: `{"pdp":{"fingerprint":{"ipv4_prefix":16,"ipv6_prefix":48},"token_endpoint":{"refresh_reuse_grace":"2s"}}}`,
			grace: 2 * time.Second, v4: 16, v6: 48},
		{name: "ok/malformed prefixes keep the defaults", data: `{"pdp":{"fingerprint":{"ipv4_prefix":33,"ipv6_prefix":"x"}}}`, v4: 24, v6: 56},
		{name: "fail/not a duration", data: `{"pdp":{"token_endpoint":{"refresh_reuse_grace":"soon"}}}`, wantErr: "refresh_reuse_grace"},
		{name: "fail/a number", data: `{"pdp":{"token_endpoint":{"refresh_reuse_grace":5}}}`, wantErr: "refresh_reuse_grace"},
		{name: "fail/negative", data: `{"pdp":{"token_endpoint":{"refresh_reuse_grace":"-1s"}}}`, wantErr: "refresh_reuse_grace"},
		{name: "fail/longer than a minute", data: `{"pdp":{"token_endpoint":{"refresh_reuse_grace":"61s"}}}`, wantErr: "refresh_reuse_grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tt.data))
			dec.UseNumber()
			var data map[string]any
			if err := dec.Decode(&data); err != nil {
				t.Fatal(err)
			}
			s, err := settingsFrom(data)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.RefreshReuseGrace != tt.grace || s.IPv4Prefix != tt.v4 || s.IPv6Prefix != tt.v6 {
				t.Fatalf("settings = %+v, %v; want grace %s, prefixes %d/%d", s, err, tt.grace, tt.v4, tt.v6)
			}
		})
	}
}

func TestSettingsListTheWellFormedDestinationsInOrder(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Destination
	}{
		{name: "ok/none", data: `{"pdp":{}}`},
		{name: "ok/not an array lists none", data: `{"pdp":{"destinations":{"broker":"nats","destination":"a"}}}`},
		{name: "ok/in order, operations filled in", data: `{"pdp":{"destinations":[
			{"name":"orders","broker":"nats","destination":"orders.>","operations":["publish"],"scopes":["orders:write"]},
			{"broker":"rabbitmq","destination":"orders"}]}}`,
			want: []Destination{
				{Name: "orders", Broker: "nats", Destination: "orders.>", Operations: []string{"publish"}},
				{Broker: "rabbitmq", Destination: "orders", Operations: []string{"publish", "subscribe", "consume", "configure"}},
			}},
		{name: "fail/malformed entries are left out", data: `{"pdp":{"destinations":[
			{"broker":"nats","destination":"a..b"}, "x", {"broker":"nats","destination":"a","operations":"publish"},
			{"broker":"kafka","destination":"t*","operations":[]}]}}`,
			want: []Destination{{Broker: "kafka", Destination: "t*", Operations: []string{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tt.data))
			dec.UseNumber()
			var data map[string]any
			if err := dec.Decode(&data); err != nil {
				t.Fatal(err)
			}
			s, err := settingsFrom(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Destinations, tt.want) {
				t.Fatalf("Destinations = %#v, want %#v", s.Destinations, tt.want)
			}
		})
	}
}
