package natsauth

import (
	"context"
	"slices"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

// Destination is one entry of the active policy version's destination
// table (policy.Settings.Destinations): a broker, a destination pattern
// and the operations it names.
type Destination struct {
	Broker      string
	Destination string
	Operations  []string
}

// permission is what one direction (publish or subscribe) of a user JWT
// allows and denies.
type permission struct {
	allow, deny []string
}

// grants decides, for tok, each operation (publish, subscribe) of each
// NATS entry of the destination table on the entry's own pattern, and
// returns the patterns allowed. One decision per entry and operation, paid
// once per connection.
//
// The table is matched first-match-wins: a subject that an earlier entry
// matches is decided by that entry. An allowed pattern that overlaps an
// earlier entry the token may not use therefore has that earlier pattern
// denied beside it (NATS applies deny before allow); this may deny a
// little more than the table would (subjects a yet earlier entry allows),
// never more is allowed. Subjects no entry matches are not granted, even
// with unknown_destinations: allow. Reply subjects (_INBOX.>) get no
// special treatment: a requester needs an entry that grants subscribe on
// them, a responder one that grants publish.
func (s *Service) grants(ctx context.Context, tok *token.Token, host string) (pub, sub permission) {
	var entries []Destination
	if s.destinations != nil {
		for _, d := range s.destinations() {
			if d.Broker == Broker {
				entries = append(entries, d)
			}
		}
	}
	pub = s.grant(ctx, tok, host, entries, decision.OpPublish)
	sub = s.grant(ctx, tok, host, entries, decision.OpSubscribe)
	return pub, sub
}

// grant is grants for one operation.
func (s *Service) grant(ctx context.Context, tok *token.Token, host string, entries []Destination, op string) permission {
	allowed := make([]bool, len(entries))
	for i, e := range entries {
		if !slices.Contains(e.Operations, op) || !validPattern(e.Destination) {
			continue // an entry that matches but lacks op denies op
		}
		allowed[i] = s.allows(ctx, tok, host, op, e.Destination)
	}
	var p permission
	for i, e := range entries {
		if !allowed[i] {
			continue
		}
		if !slices.Contains(p.allow, e.Destination) {
			p.allow = append(p.allow, e.Destination)
		}
		for j := range i {
			d := entries[j].Destination
			if !allowed[j] && validPattern(d) && overlap(d, e.Destination) && !slices.Contains(p.deny, d) {
				p.deny = append(p.deny, d)
			}
		}
	}
	return p
}

// allows decides op on destination for the verified token.
func (s *Service) allows(ctx context.Context, tok *token.Token, host, op, destination string) bool {
	s.counts.grantDecisions.Add(1)
	req, err := decision.NewMessage(decision.RawMessage{Broker: Broker, Operation: op, Destination: destination, Verified: tok, RemoteIP: host})
	if err != nil {
		return false
	}
	d, err := s.decider.Decide(ctx, req)
	if err != nil {
		s.logger.Warn("nats destination decision failed: not granted", "error", err, "operation", op, "destination", destination,
			"token_sha256", tok.Hash)
	}
	return d != nil && d.Allow
}
