package natsauth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// TestConnect connects real clients through a real nats-server whose auth
// callout is the service, deciding with the shipped policy.
func TestConnect(t *testing.T) {
	r := newRig(t, rigOptions{})
	now := time.Now()
	revoked := r.mint(t, map[string]any{"jti": "revoked-at-connect"})
	if _, err := r.st.PutRevocation(t.Context(), store.Revocation{Kind: store.KindJTI, Issuer: rigIss, Value: "revoked-at-connect",
		ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opt    nats.Option
		reason string // "" for a connection that is authorized
	}{
		{name: "ok/token as auth_token", opt: nats.Token(r.mint(t, nil))},
		{name: "ok/token as the password", opt: nats.UserInfo("alice", r.mint(t, nil))},
		{name: "fail/no token", opt: nats.UserInfo("alice", ""), reason: token.CodeTokenMissing},
		{name: "fail/expired token", opt: nats.Token(r.mint(t, map[string]any{"iat": now.Add(-20 * time.Minute).Unix(),
			"exp": now.Add(-10 * time.Minute).Unix()})), reason: token.CodeExpired},
		{name: "fail/revoked token", opt: nats.Token(revoked), reason: "token_revoked"},
		{name: "fail/token for another audience", opt: nats.Token(r.mint(t, map[string]any{"aud": "https://other.example.com"})),
			reason: token.CodeAudienceMismatch},
		{name: "fail/token living longer than its grant type may", opt: nats.Token(r.mint(t, map[string]any{"exp": now.Add(2 * time.Hour).Unix()})),
			reason: "lifetime_exceeded"},
		{name: "fail/token larger than 16 KiB", opt: nats.Token(r.mint(t, map[string]any{"pad": strings.Repeat("a", 20<<10)})),
			reason: token.CodeTokenMalformed},
		{name: "fail/token of an untrusted issuer", opt: nats.Token(r.mint(t, map[string]any{"iss": "https://evil.example.com"})),
			reason: token.CodeIssuerUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.logs.reset()
			r.decisions.take()
			nc, err := r.connect(tt.opt)
			// Every connect is decision-logged, once (the decisions on
			// destinations are not).
			if got := r.decisions.take(); len(got) != 1 || got[0].Decision.Allow != (tt.reason == "") || !strings.HasPrefix(got[0].RequestedBy, "nats:") {
				t.Errorf("decision log = %+v, want one entry, allow %v", got, tt.reason == "")
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("connect: %v (refusals: %v)", err, r.logs.refusals())
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("connected, want a refusal")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("err = %v, want an authorization violation", err)
			}
			if got := r.logs.refusals(); !slices.Contains(got, tt.reason) {
				t.Errorf("refused for %v, want %s", got, tt.reason)
			}
		})
	}
}

// TestPermissions checks that the server enforces the permissions of the
// user JWT: the NATS destinations the token's scopes allow, nothing else.
func TestPermissions(t *testing.T) {
	r := newRig(t, rigOptions{})
	tests := []struct {
		name     string
		scope    string
		pub, sub []string // allowed
		denyPub  []string
		denySub  []string
	}{
		{name: "ok/writer publishes and subscribes order events", scope: "orders:write",
			pub: []string{"orders.created", "orders.eu.created"}, sub: []string{"orders.created"},
			denyPub: []string{"audit.login", "payments.created", "_INBOX.x"}, denySub: []string{"audit.login"}},
		{name: "ok/writer is denied what an earlier entry denies", scope: "orders:write",
			denyPub: []string{"orders.42.status"}, denySub: []string{"orders.42.status"}},
		{name: "ok/status scope publishes and subscribes order status only", scope: "orders:status",
			pub: []string{"orders.42.status"}, sub: []string{"orders.*.status"},
			denyPub: []string{"orders.created"}, denySub: []string{"orders.created", "audit.>"}},
		{name: "ok/token without NATS scopes connects with no rights", scope: "profile",
			denyPub: []string{"orders.created", "anything"}, denySub: []string{"orders.created", ">"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			violations := make(chan string, 16)
			nc, err := r.connect(nats.Token(r.mint(t, map[string]any{"scope": tt.scope})),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					if errors.Is(err, nats.ErrPermissionViolation) {
						violations <- err.Error()
					}
				}))
			if err != nil {
				t.Fatalf("connect: %v (refusals: %v)", err, r.logs.refusals())
			}
			defer nc.Close()
			for _, subj := range tt.sub {
				if _, err := nc.SubscribeSync(subj); err != nil {
					t.Fatal(err)
				}
				expectNoViolation(t, nc, violations, "subscribe "+subj)
			}
			for _, subj := range tt.pub {
				if err := nc.Publish(subj, []byte("x")); err != nil {
					t.Fatal(err)
				}
				expectNoViolation(t, nc, violations, "publish "+subj)
			}
			for _, subj := range tt.denySub {
				if _, err := nc.SubscribeSync(subj); err != nil {
					t.Fatal(err)
				}
				expectViolation(t, nc, violations, "subscription", subj)
			}
			for _, subj := range tt.denyPub {
				if err := nc.Publish(subj, []byte("x")); err != nil {
					t.Fatal(err)
				}
				expectViolation(t, nc, violations, "publish", subj)
			}
		})
	}
}

// TestPublishedMessageArrives: an allowed publish is delivered to an
// allowed subscriber, both connected with tokens.
func TestPublishedMessageArrives(t *testing.T) {
	r := newRig(t, rigOptions{})
	sub, err := r.connect(nats.Token(r.mint(t, map[string]any{"scope": "orders:status", "sub": "bob"})))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	s, err := sub.SubscribeSync("orders.*.status")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := r.connect(nats.Token(r.mint(t, map[string]any{"scope": "orders:write orders:status"})))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish("orders.42.status", []byte("shipped")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "shipped" {
		t.Errorf("got %q", m.Data)
	}
}

// TestRevocationClosesLiveConnections revokes, in the store the server
// uses (what the admin API, RFC 7009 and SSF write), the token, session or
// subject of a live connection and waits for the server to close it.
func TestRevocationClosesLiveConnections(t *testing.T) {
	r := newRig(t, rigOptions{})
	tests := []struct {
		name   string
		claims map[string]any
		rev    func(tok string) store.Revocation
	}{
		{name: "ok/subject revoked", claims: map[string]any{"sub": "carol"},
			rev: func(string) store.Revocation { return store.Revocation{Kind: store.KindSubject, Value: "carol"} }},
		{name: "ok/session revoked", claims: map[string]any{"sub": "dave", "sid": "s-dave"},
			rev: func(string) store.Revocation { return store.Revocation{Kind: store.KindSession, Value: "s-dave"} }},
		{name: "ok/token revoked by jti", claims: map[string]any{"sub": "erin", "jti": "j-erin"},
			rev: func(string) store.Revocation { return store.Revocation{Kind: store.KindJTI, Value: "j-erin"} }},
		{name: "ok/token without jti revoked by its hash", claims: map[string]any{"sub": "frank", "jti": nil},
			rev: func(tok string) store.Revocation {
				return store.Revocation{Kind: store.KindJTI, Value: "sha256:" + token.HashToken(tok)}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := r.mint(t, tt.claims)
			closed := make(chan struct{})
			nc, err := r.connect(nats.Token(tok), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			if err != nil {
				t.Fatalf("connect: %v (refusals: %v)", err, r.logs.refusals())
			}
			defer nc.Close()
			// Another live connection of someone else stays.
			other, err := r.connect(nats.Token(r.mint(t, map[string]any{"sub": "zoe", "sid": "s-zoe"})))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			// A cut-off applies to tokens issued before it; iat has a
			// precision of a second.
			time.Sleep(1100 * time.Millisecond)
			rev := tt.rev(tok)
			rev.Issuer, rev.ExpiresAt = rigIss, time.Now().Add(time.Hour)
			start := time.Now()
			if _, err := r.st.PutRevocation(t.Context(), rev); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
				t.Logf("closed %s after the revocation", time.Since(start).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("the connection is still open 5s after the revocation")
			}
			if !other.IsConnected() {
				t.Error("another subject's connection was closed too")
			}
			// The revoked token cannot connect again.
			if nc2, err := r.connect(nats.Token(tok)); err == nil {
				nc2.Close()
				t.Error("the revoked token connected again")
			}
		})
	}
	if st := r.svc.Status(); st.Kicks[kickClosed] != uint64(len(tests)) {
		t.Errorf("status kicks = %v, want %d closed", st.Kicks, len(tests))
	}
}

// TestUserJWTExpiry decides real authorization requests and reads the
// answer's user JWT: its expiry is the token's exp or now +
// max_connection_lifetime, whichever is earlier.
func TestUserJWTExpiry(t *testing.T) {
	r := newRig(t, rigOptions{maxLifetime: 2 * time.Minute})
	serverKey, _ := nkeys.CreateServer()
	now := time.Now()
	tests := []struct {
		name string
		exp  time.Time
		want time.Time
	}{
		{name: "ok/capped by max_connection_lifetime", exp: now.Add(10 * time.Minute), want: now.Add(2 * time.Minute)},
		{name: "ok/token expiring sooner keeps its exp", exp: now.Add(time.Minute), want: now.Add(time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := r.mint(t, map[string]any{"exp": tt.exp.Unix()})
			data := signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
				c.ConnectOptions = jwt.ConnectOptions{Token: tok}
			})
			resp, err := r.svc.Authorize(context.Background(), []byte(data), "")
			if err != nil {
				t.Fatal(err)
			}
			ac, err := jwt.DecodeAuthorizationResponseClaims(string(resp))
			if err != nil {
				t.Fatal(err)
			}
			if ac.Error != "" {
				t.Fatalf("refused: %s", ac.Error)
			}
			uc, err := jwt.DecodeUserClaims(ac.Jwt)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Unix(uc.Expires, 0).Sub(tt.want); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("user JWT expires %s, want about %s", time.Unix(uc.Expires, 0), tt.want)
			}
			if uc.Audience != "APP" || uc.Issuer != r.svc.Issuer() {
				t.Errorf("user JWT audience %q issuer %q", uc.Audience, uc.Issuer)
			}
			if strings.Contains(string(resp), tok) || strings.Contains(ac.Jwt, tok) {
				t.Error("the answer carries the token")
			}
		})
	}
}

// TestConnectionEndsAtItsLifetime: the server itself closes a connection
// when its user JWT expires.
func TestConnectionEndsAtItsLifetime(t *testing.T) {
	r := newRig(t, rigOptions{maxLifetime: 2 * time.Second})
	closed := make(chan struct{})
	nc, err := r.connect(nats.Token(r.mint(t, nil)), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived max_connection_lifetime")
	}
}

// TestMaxConnections: past max_connections a connect is refused as
// overloaded; once a tracked connection closes there is room again.
func TestMaxConnections(t *testing.T) {
	r := newRig(t, rigOptions{maxConnections: 1})
	first, err := r.connect(nats.Token(r.mint(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.logs.reset()
	if nc, err := r.connect(nats.Token(r.mint(t, nil))); err == nil {
		nc.Close()
		t.Fatal("a second connection was authorized past max_connections")
	}
	if got := r.logs.refusals(); !slices.Contains(got, CodeOverloaded) {
		t.Errorf("refused for %v, want %s", got, CodeOverloaded)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for r.svc.conns.len() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	nc, err := r.connect(nats.Token(r.mint(t, nil)))
	if err != nil {
		t.Fatalf("no room after the first connection closed: %v", err)
	}
	nc.Close()
}

// TestEncryptedCallout runs the callout with xkey encryption on both sides.
func TestEncryptedCallout(t *testing.T) {
	r := newRig(t, rigOptions{xkey: true})
	nc, err := r.connect(nats.Token(r.mint(t, nil)))
	if err != nil {
		t.Fatalf("connect: %v (refusals: %v)", err, r.logs.refusals())
	}
	defer nc.Close()
	if err := nc.Publish("orders.created", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if nc, err := r.connect(nats.Token(r.mint(t, map[string]any{"aud": "https://other.example.com"}))); err == nil {
		nc.Close()
		t.Fatal("a wrong-audience token connected")
	}
}

func expectNoViolation(t *testing.T, nc *nats.Conn, violations <-chan string, what string) {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-violations:
		t.Errorf("%s: %s", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

func expectViolation(t *testing.T, nc *nats.Conn, violations <-chan string, op, subj string) {
	t.Helper()
	_ = nc.Flush()
	select {
	case v := <-violations:
		if !strings.Contains(strings.ToLower(v), op) || !strings.Contains(v, subj) {
			t.Errorf("%s %s: violation %q", op, subj, v)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s %s: no permissions violation", op, subj)
	}
}
