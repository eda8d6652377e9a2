package httpapi

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tokenguard/pdp/internal/token"
)

// verifiedTokens keeps the tokens RabbitMQ's users connected with, by
// subject: the *token.Token the verifier returned (its hash and verified
// claims, never the token), until it expires or, without an expiry or a
// later one, until maxAge after it was last presented (an introspected
// token: no longer than its introspection is trusted). It is bounded per
// subject (a newer token replaces the one presented least recently) and in
// total (beyond, once the expired ones are dropped, a new token is
// refused). The tokens kept for a subject are of one principal (issuer and
// client_id): while they live, another principal's token of the same
// subject is refused. It is safe for concurrent use.
type verifiedTokens struct {
	mu         sync.Mutex
	bySubject  map[string][]keptToken // the one presented last, last
	total      int
	max        int
	perSubject int
	maxAge     time.Duration
	// swept is when every subject was last swept: a full memory is swept
	// at most once a second, so a flood of connects costs no scan each.
	swept time.Time
}

type keptToken struct {
	tok   *token.Token
	until time.Time
}

func newVerifiedTokens(maxTotal, perSubject int, maxAge time.Duration) *verifiedTokens {
	return &verifiedTokens{bySubject: map[string][]keptToken{}, max: max(maxTotal, 1), perSubject: max(perSubject, 1), maxAge: max(maxAge, time.Second)}
}

// Errors of remember.
var (
	// errTokensFull: the memory is full.
	errTokensFull = errors.New("the verified tokens kept reached messaging.rabbitmq.max_tokens")
	// errOtherPrincipal: the subject's kept tokens are another issuer's or
	// another client's. The later checks carry the username alone, so
	// every connection of the subject is decided with every token kept
	// for it: tokens of two principals would share their rights.
	errOtherPrincipal = errors.New("the tokens kept for the subject are another issuer's or another client's")
)

// remember keeps tok for its subject, as the one presented last. It
// fails when the memory is full (errTokensFull) or when the subject's
// kept tokens are another principal's (errOtherPrincipal): all the tokens
// kept for a subject have one issuer and one client_id.
func (v *verifiedTokens) remember(tok *token.Token, now time.Time) error {
	until := now.Add(v.maxAge)
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(until) {
		until = tok.ExpiresAt
	}
	// An introspection answer is trusted for the issuer's cache_ttl only:
	// after, the authorization server may have deactivated the token.
	if !tok.FreshUntil.IsZero() && tok.FreshUntil.Before(until) {
		until = tok.FreshUntil
	}
	if !until.After(now) {
		return nil // expired already: nothing to keep, and the engine denied it anyway
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := v.prune(tok.Subject, now)
	v.set(tok.Subject, kept)
	if len(kept) > 0 && (kept[0].tok.Issuer != tok.Issuer || kept[0].tok.ClientID != tok.ClientID) {
		return errOtherPrincipal
	}
	switch i := slices.IndexFunc(kept, func(k keptToken) bool { return k.tok.Hash == tok.Hash }); {
	case i >= 0: // presented again: now the one presented last
		kept = slices.Delete(kept, i, i+1)
		v.total--
	case len(kept) >= v.perSubject: // replaces the one presented least recently
		kept = slices.Delete(kept, 0, 1)
		v.total--
	case v.total >= v.max:
		if now.Sub(v.swept) >= time.Second {
			v.sweep(now)
		}
		if v.total >= v.max {
			return errTokensFull
		}
		kept = v.bySubject[tok.Subject]
	}
	v.set(tok.Subject, append(kept, keptToken{tok: tok, until: until}))
	v.total++
	return nil
}

// of returns the tokens kept for subject, the one presented last first.
func (v *verifiedTokens) of(subject string, now time.Time) []*token.Token {
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := v.prune(subject, now)
	v.set(subject, kept)
	out := make([]*token.Token, len(kept))
	for i, k := range kept {
		out[len(kept)-1-i] = k.tok
	}
	return out
}

// forget drops the token whose hash is given, kept for subject.
func (v *verifiedTokens) forget(subject, hash string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := v.bySubject[subject]
	if i := slices.IndexFunc(kept, func(k keptToken) bool { return k.tok.Hash == hash }); i >= 0 {
		v.set(subject, slices.Delete(kept, i, i+1))
		v.total--
	}
}

// len is the number of tokens kept.
func (v *verifiedTokens) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.total
}

// prune drops the expired tokens of subject and returns the others; the
// caller stores them back with set.
func (v *verifiedTokens) prune(subject string, now time.Time) []keptToken {
	kept := v.bySubject[subject]
	live := kept[:0]
	for _, k := range kept {
		if now.Before(k.until) {
			live = append(live, k)
		}
	}
	clear(kept[len(live):])
	v.total -= len(kept) - len(live)
	return live
}

// set stores the tokens of subject; none deletes the subject.
func (v *verifiedTokens) set(subject string, kept []keptToken) {
	if len(kept) == 0 {
		delete(v.bySubject, subject)
		return
	}
	v.bySubject[subject] = kept
}

// sweep drops every expired token.
func (v *verifiedTokens) sweep(now time.Time) {
	v.swept = now
	for subject := range v.bySubject {
		v.set(subject, v.prune(subject, now))
	}
}
