package ssf

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/store"
)

// probe is a token whose revocation a test checks: issued before the
// cut-off it must be revoked (when revoked is set) or not; issued after
// the cut-off it must never be.
type probe struct {
	issuer, subject, session string
	revoked                  bool
}

func TestPushedEventsRevokeTokensIssuedBeforeTheEvent(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	cutoff := now.Add(-10 * time.Minute).Truncate(time.Second)
	signers := []signer{e.es256, e.rs256, e.ps256, e.es384, e.eddsa}

	type tc struct {
		name        string
		event       string
		payload     map[string]any
		subID       func(user string) map[string]any
		legacy      bool // subject inside the event instead of sub_id
		iat         time.Time
		noTimestamp bool
		aud         any
		wantKind    store.Kind
		wantReason  string
		probes      func(user string) []probe
	}
	userA := func(user string) map[string]any { return issSub(tokIssuerA, user) }
	onlyA := func(user string) []probe {
		return []probe{{issuer: tokIssuerA, subject: user, revoked: true}, {issuer: tokIssuerB, subject: user}}
	}
	bothIssuers := func(user string) []probe {
		return []probe{{issuer: tokIssuerA, subject: user, revoked: true}, {issuer: tokIssuerB, subject: user, revoked: true}}
	}

	var cases []tc
	for _, ev := range []struct{ uri, name string }{
		{EventSessionRevoked, "session-revoked"},
		{EventCredentialChange, "credential-change"},
		{EventTokenClaimsChange, "token-claims-change"},
		{EventAssuranceLevelChange, "assurance-level-change"},
		{EventDeviceComplianceChange, "device-compliance-change"},
		{EventAccountDisabled, "account-disabled"},
		{EventAccountPurged, "account-purged"},
		{EventCredentialCompromise, "credential-compromise"},
		{EventAccountCredentialChangeRequired, "account-credential-change-required"},
		{EventIdentifierChanged, "identifier-changed"},
		{EventIdentifierRecycled, "identifier-recycled"},
	} {
		payload := map[string]any{}
		if ev.uri == EventDeviceComplianceChange {
			payload = map[string]any{"previous_status": "compliant", "current_status": "not-compliant"}
		}
		cases = append(cases, tc{
			name: "ok/" + ev.name + " with iss_sub cuts off the subject", event: ev.uri, payload: payload,
			subID: userA, wantKind: store.KindSubject, wantReason: "ssf:" + ev.name, probes: onlyA,
		})
	}
	cases = append(cases,
		tc{
			name: "ok/email subject cuts off that subject at every token issuer", event: EventCredentialChange,
			subID: func(user string) map[string]any {
				return map[string]any{"format": "email", "email": user + "@example.com"}
			},
			wantKind: store.KindSubject, wantReason: "ssf:credential-change",
			probes: func(user string) []probe { return bothIssuers(user + "@example.com") },
		},
		tc{
			name: "ok/opaque subject cuts off that subject at every token issuer", event: EventAccountDisabled,
			subID:    func(user string) map[string]any { return map[string]any{"format": "opaque", "id": user} },
			wantKind: store.KindSubject, wantReason: "ssf:account-disabled", probes: bothIssuers,
		},
		tc{
			name: "ok/complex subject with user and tenant cuts off the user", event: EventCredentialChange,
			subID: func(user string) map[string]any {
				return map[string]any{"format": "complex", "user": issSub(tokIssuerA, user), "tenant": map[string]any{"format": "opaque", "id": "t1"}}
			},
			wantKind: store.KindSubject, wantReason: "ssf:credential-change", probes: onlyA,
		},
		tc{
			name: "ok/session-revoked with a complex session cuts off only that session", event: EventSessionRevoked,
			subID: func(user string) map[string]any {
				return map[string]any{"format": "complex", "session": map[string]any{"format": "opaque", "id": "sid-" + user}, "user": issSub(tokIssuerA, user)}
			},
			wantKind: store.KindSession, wantReason: "ssf:session-revoked",
			probes: func(user string) []probe {
				return []probe{
					{issuer: tokIssuerA, subject: user, session: "sid-" + user, revoked: true},
					{issuer: tokIssuerB, subject: user, session: "sid-" + user, revoked: true},
					{issuer: tokIssuerA, subject: user, session: "other-session"},
					{issuer: tokIssuerA, subject: user},
				}
			},
		},
		tc{
			name: "ok/session-revoked with an iss_sub session cuts off that issuer's session", event: EventSessionRevoked,
			subID: func(user string) map[string]any {
				return map[string]any{"format": "complex", "session": issSub(tokIssuerB, "sid-"+user)}
			},
			wantKind: store.KindSession, wantReason: "ssf:session-revoked",
			probes: func(user string) []probe {
				return []probe{
					{issuer: tokIssuerB, subject: user, session: "sid-" + user, revoked: true},
					{issuer: tokIssuerA, subject: user, session: "sid-" + user},
				}
			},
		},
		tc{
			name: "ok/other events with a session-only complex subject cut off the session", event: EventTokenClaimsChange,
			subID: func(user string) map[string]any {
				return map[string]any{"format": "complex", "session": issSub(tokIssuerA, "sid-"+user)}
			},
			wantKind: store.KindSession, wantReason: "ssf:token-claims-change",
			probes: func(user string) []probe {
				return []probe{{issuer: tokIssuerA, subject: user, session: "sid-" + user, revoked: true}, {issuer: tokIssuerA, subject: user}}
			},
		},
		tc{
			name: "ok/legacy subject inside the event", event: EventCredentialChange, legacy: true,
			subID: userA, wantKind: store.KindSubject, wantReason: "ssf:credential-change", probes: onlyA,
		},
		tc{
			name: "ok/legacy complex subject without format", event: EventSessionRevoked, legacy: true,
			subID:    func(user string) map[string]any { return map[string]any{"user": issSub(tokIssuerA, user)} },
			wantKind: store.KindSubject, wantReason: "ssf:session-revoked", probes: onlyA,
		},
		tc{
			name: "ok/aud array containing the receiver", event: EventAccountDisabled, aud: []string{"https://elsewhere.example", txAudience},
			subID: userA, wantKind: store.KindSubject, wantReason: "ssf:account-disabled", probes: onlyA,
		},
		tc{
			name: "ok/without event_timestamp the cut-off is iat", event: EventAccountPurged, iat: cutoff, noTimestamp: true,
			subID: userA, wantKind: store.KindSubject, wantReason: "ssf:account-purged", probes: onlyA,
		},
		tc{
			name: "ok/event_timestamp in the future falls back to iat", event: EventCredentialCompromise, iat: cutoff,
			payload: map[string]any{"event_timestamp": now.Add(time.Hour).Unix()},
			subID:   userA, wantKind: store.KindSubject, wantReason: "ssf:credential-compromise", probes: onlyA,
		},
	)

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("user-%d", i)
			payload := map[string]any{}
			for k, v := range c.payload {
				payload[k] = v
			}
			if _, ok := payload["event_timestamp"]; !ok && !c.noTimestamp {
				payload["event_timestamp"] = cutoff.Unix()
			}
			subID := c.subID(user)
			if c.legacy {
				payload["subject"] = subID
				subID = nil
			}
			claims := e.claims(c.event, payload, subID)
			if !c.iat.IsZero() {
				claims["iat"] = c.iat.Unix()
			}
			if c.aud != nil {
				claims["aud"] = c.aud
			}
			s := signers[i%len(signers)]
			status, eb, body := e.deliver(t, ContentType, s.setOf(t, claims))
			if status != http.StatusAccepted || body != "" {
				t.Fatalf("%s: status %d body %q (%+v), want 202 with no body", s.alg, status, body, eb)
			}
			for _, p := range c.probes(user) {
				ref := store.TokenRef{Issuer: p.issuer, Subject: p.subject, SessionID: p.session, IssuedAt: cutoff.Add(-10 * time.Minute)}
				r, ok := e.revoked(t, ref)
				if ok != p.revoked {
					t.Errorf("token %+v issued before the cut-off: revoked = %v, want %v", p, ok, p.revoked)
				}
				if ok && (r.Kind != c.wantKind || r.Reason != c.wantReason || !r.NotBefore.Equal(cutoff)) {
					t.Errorf("revocation = %+v, want kind %s reason %s not_before %s", r, c.wantKind, c.wantReason, cutoff)
				}
				if ok && r.ExpiresAt.Before(now.Add(29*24*time.Hour)) {
					t.Errorf("revocation expires at %s, too early", r.ExpiresAt)
				}
				ref.IssuedAt = cutoff.Add(5 * time.Minute)
				if r, ok := e.revoked(t, ref); ok {
					t.Errorf("token %+v issued after the cut-off is revoked by %+v", p, r)
				}
			}
		})
	}
}

func TestAcceptedEventsWithoutEffect(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		event   string
		payload map[string]any
		subID   map[string]any
		ignored string
	}{
		{"ok/unknown event type is accepted and ignored", CAEPPrefix + "risk-level-change", map[string]any{"risk_level": "HIGH"}, issSub(tokIssuerA, "u1"), IgnoredUnknownEvent},
		{"ok/event outside CAEP and RISC is accepted and ignored", "https://example.com/event/custom", map[string]any{}, issSub(tokIssuerA, "u1"), IgnoredUnknownEvent},
		{"ok/unsupported subject format is accepted and ignored", EventAccountDisabled, map[string]any{}, map[string]any{"format": "phone_number", "phone_number": "+12065550100"}, IgnoredUnknownSubject},
		{"ok/complex subject naming only a device is accepted and ignored", EventCredentialChange, map[string]any{}, map[string]any{"format": "complex", "device": map[string]any{"format": "opaque", "id": "d1"}}, IgnoredUnknownSubject},
		{"ok/device becoming compliant is accepted and ignored", EventDeviceComplianceChange, map[string]any{"previous_status": "not-compliant", "current_status": "compliant"}, issSub(tokIssuerA, "u1"), IgnoredDeviceCompliant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, ignoredBefore := e.rev.puts.Load(), e.recv.Stats().Ignored
			set := e.es256.setOf(t, e.claims(c.event, c.payload, c.subID))
			res, err := e.recv.Process(context.Background(), []byte(set))
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if res.Ignored != c.ignored || len(res.Revocations) != 0 {
				t.Errorf("result = %+v, want ignored %q without revocations", res, c.ignored)
			}
			if got := e.rev.puts.Load() - before; got != 0 {
				t.Errorf("%d revocations written, want none", got)
			}
			if got := e.recv.Stats().Ignored - ignoredBefore; got != 1 {
				t.Errorf("ignored count grew by %d, want 1", got)
			}
			// The push endpoint answers 202 for it as well.
			set = e.es256.setOf(t, e.claims(c.event, c.payload, c.subID))
			if status, eb, _ := e.deliver(t, ContentType, set); status != http.StatusAccepted {
				t.Errorf("push: status %d (%+v), want 202", status, eb)
			}
		})
	}
}

func TestReplayedSETGetsTheSameAnswerAndIsAppliedOnce(t *testing.T) {
	e := newEnv(t)
	claims := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "replayed-user"))
	set := e.es256.setOf(t, claims)
	for i := range 3 {
		if status, eb, body := e.deliver(t, ContentType, set); status != http.StatusAccepted || body != "" {
			t.Fatalf("delivery %d: status %d (%+v) body %q, want 202 with no body", i+1, status, eb, body)
		}
	}
	if got := e.rev.puts.Load(); got != 1 {
		t.Errorf("revocations written = %d, want 1", got)
	}
	if st := e.recv.Stats(); st.Applied != 1 || st.Duplicates != 2 {
		t.Errorf("stats = %+v, want 1 applied and 2 duplicates", st)
	}
	// The same jti signed again by the transmitter counts as the same SET.
	claims["iat"] = e.clock.Now().Unix() + 1
	res, err := e.recv.Process(context.Background(), []byte(e.es256.setOf(t, claims)))
	if err != nil || !res.Duplicate {
		t.Errorf("same jti again: result %+v, err %v; want a duplicate", res, err)
	}

	// A refused SET is refused again the same way.
	bad := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "u"))
	bad["aud"] = "https://someone-else.example"
	badSET := e.es256.setOf(t, bad)
	for i := range 2 {
		status, eb, _ := e.deliver(t, ContentType, badSET)
		if status != http.StatusBadRequest || eb.Err != CodeInvalidAudience {
			t.Errorf("refused delivery %d: status %d %+v, want 400 invalid_audience", i+1, status, eb)
		}
	}
}

func TestStoreFailureAsksTheTransmitterToRetry(t *testing.T) {
	e := newEnv(t)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	set := e.es256.setOf(t, e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "u")))
	status, eb, body := e.deliver(t, ContentType, set)
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d (%s), want 500", status, body)
	}
	if eb.Description == "" {
		t.Errorf("500 body %q has no description", body)
	}
	// Not remembered as applied: the retry is applied, not skipped.
	if st := e.recv.Stats(); st.StoreFailures != 1 || st.Duplicates != 0 {
		t.Errorf("stats = %+v", st)
	}
	status, _, _ = e.deliver(t, ContentType, set)
	if status != http.StatusInternalServerError {
		t.Errorf("retry against the closed store: status %d, want 500 again (not a duplicate 202)", status)
	}
}

// A SET delivered again after a restart is recognised from the store on
// disk: it is answered as a duplicate and does not bring back a revocation
// an administrator deleted in between.
func TestReplayedSETAfterARestartDoesNotRecreateADeletedRevocation(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	open := func() *store.Bolt {
		t.Helper()
		st, err := store.OpenBolt(dir, store.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	receiver := func(st *store.Bolt) *Receiver {
		t.Helper()
		r, err := NewReceiver(context.Background(), e.cfg, st, Options{Logger: testLogger(t), Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ctx := context.Background()
	set := []byte(e.es256.setOf(t, e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "restarted-user"))))
	ref := store.TokenRef{Issuer: tokIssuerA, Subject: "restarted-user", IssuedAt: e.clock.Now().Add(-time.Hour)}

	st := open()
	res, err := receiver(st).Process(ctx, set)
	if err != nil || len(res.Revocations) != 1 {
		t.Fatalf("first delivery: %+v, %v", res, err)
	}
	if err := st.DeleteRevocation(ctx, res.Revocations[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open()
	t.Cleanup(func() { _ = st.Close() })
	recv := receiver(st)
	res, err = recv.Process(ctx, set)
	if err != nil || !res.Duplicate || len(res.Revocations) != 0 {
		t.Fatalf("delivery after the restart: %+v, %v; want a duplicate that applies nothing", res, err)
	}
	if r, revoked, err := st.CheckRevocation(ctx, ref); revoked || err != nil {
		t.Fatalf("the deleted revocation came back: %+v, %v", r, err)
	}
	if s := recv.Stats(); s.Duplicates != 1 || s.Applied != 0 {
		t.Errorf("stats = %+v, want one duplicate", s)
	}
}

func TestSETWithinTheClockSkewIsApplied(t *testing.T) {
	e := newEnv(t)
	c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "skewed-user"))
	c["iat"] = e.clock.Now().Add(DefaultSkew / 2).Unix()
	if status, eb, _ := e.deliver(t, ContentType, e.es256.setOf(t, c)); status != http.StatusAccepted {
		t.Fatalf("a SET issued within the skew: %d %+v, want 202", status, eb)
	}
	c = e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "aged-user"))
	c["iat"] = e.clock.Now().Add(-DefaultMaxAge + time.Minute).Unix()
	if status, eb, _ := e.deliver(t, ContentType, e.es256.setOf(t, c)); status != http.StatusAccepted {
		t.Fatalf("a SET just younger than max_age: %d %+v, want 202", status, eb)
	}
}
