package natsauth

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

// tableDecider allows the (operation, destination) pairs it lists. The
// real engine is in the end-to-end tests; this one pins how the answers
// per entry become allow and deny lists.
type tableDecider map[[2]string]bool

func (d tableDecider) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	return &decision.Decision{Allow: d[[2]string{req.Message.Operation, req.Message.Destination}]}, nil
}

func TestGrantFollowsFirstMatchWins(t *testing.T) {
	tests := []struct {
		name    string
		table   []Destination
		allowed [][2]string
		want    permission
	}{
		{
			name:    "ok/allowed entries only",
			table:   []Destination{{"nats", "orders.>", []string{"publish"}}, {"nats", "audit.>", []string{"publish"}}},
			allowed: [][2]string{{"publish", "orders.>"}},
			want:    permission{allow: []string{"orders.>"}},
		},
		{
			name: "ok/an earlier denied entry that overlaps is denied beside the allowed one",
			table: []Destination{{"nats", "orders.secret.*", []string{"publish"}}, {"nats", "orders.>", []string{"publish"}},
				{"nats", "audit.>", []string{"publish"}}},
			allowed: [][2]string{{"publish", "orders.>"}},
			want:    permission{allow: []string{"orders.>"}, deny: []string{"orders.secret.*"}},
		},
		{
			name:    "ok/an earlier entry without the operation denies it",
			table:   []Destination{{"nats", "orders.created", []string{"subscribe"}}, {"nats", "orders.*", []string{"publish"}}},
			allowed: [][2]string{{"publish", "orders.*"}, {"subscribe", "orders.created"}},
			want:    permission{allow: []string{"orders.*"}, deny: []string{"orders.created"}},
		},
		{
			name:    "ok/a later catch-all denied is not denied",
			table:   []Destination{{"nats", "orders.>", []string{"publish"}}, {"nats", ">", []string{"publish"}}},
			allowed: [][2]string{{"publish", "orders.>"}},
			want:    permission{allow: []string{"orders.>"}},
		},
		{
			name:    "ok/other brokers and invalid patterns are left out",
			table:   []Destination{{"rabbitmq", "orders", []string{"publish"}}, {"nats", "orders..x", []string{"publish"}}},
			allowed: [][2]string{{"publish", "orders"}, {"publish", "orders..x"}},
			want:    permission{},
		},
	}
	tok := &token.Token{Hash: "h", Issuer: rigIss}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tableDecider{}
			for _, a := range tt.allowed {
				d[a] = true
			}
			issuer, _ := nkeys.CreateAccount()
			s, err := New(d, nil, nil, Options{Issuer: issuer, Account: "APP", Destinations: func() []Destination { return tt.table }})
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := s.grants(context.Background(), tok, "")
			if !slices.Equal(pub.allow, tt.want.allow) || !slices.Equal(pub.deny, tt.want.deny) {
				t.Errorf("publish = %+v, want %+v", pub, tt.want)
			}
		})
	}
}
